"""Submitting with the ledger: the row is written before the POST, the task id right after.

Once the server has answered with a task id, that id reaches the user whatever
fails next: Ctrl-C and SIGTERM are held while it is recorded, and if the ledger
cannot be written the id goes to the journal beside it and onto stderr.
"""

from __future__ import annotations

from collections.abc import Callable

from soulcli import journal, signals
from soulcli.client import ApiClient
from soulcli.errors import (
    STOPS,
    ConfigError,
    MaybeChargedError,
    SoulError,
    TaskUnrecordedError,
    resume_command,
    stop_exit_code,
    stop_word,
)
from soulcli.ledger import OUTCOME_UNKNOWN, Ledger
from soulcli.models import GenerationRequest, format_ptc


def submit_recorded(
    client: ApiClient,
    ledger: Ledger,
    request: GenerationRequest,
    *,
    out_dir: str | None,
    api_host: str,
    batch_id: int | None = None,
    batch_line: int | None = None,
    image_stem: str | None = None,
    line_key: str | None = None,
) -> tuple[int, str]:
    """POST one request, keeping the ledger true whatever happens; returns (local id, task id).

    With a batch `line_key`, the row is also the line's claim: AlreadyClaimed (from
    the ledger) means another row has it, and nothing is sent.
    """
    local_id = ledger.add(
        request,
        out_dir=out_dir,
        api_host=api_host,
        batch_id=batch_id,
        batch_line=batch_line,
        image_stem=image_stem,
        line_key=line_key,
    )
    # Ctrl-C passes while the request is on its way, and is held from the moment a 2xx
    # answer is in hand until its task id is recorded: an id the server gave is never
    # dropped between the two.
    with signals.held(passing=True) as held:
        task_id = _post(client, ledger, local_id, request, on_answer=held.hold_from_now)
        resume = resume_command(task_id, out_dir)
        held.last_words = f"task {task_id} was submitted; get its images with: {resume}"
        record_task_id(ledger, local_id, task_id, request=request, out_dir=out_dir)
    with signals.naming_task(task_id, out_dir, doing="submitting"):
        held.deliver()  # a signal that came while the id was being recorded
    return local_id, task_id


def _post(
    client: ApiClient,
    ledger: Ledger,
    local_id: int,
    request: GenerationRequest,
    *,
    on_answer: Callable[[], None],
) -> str:
    """Send the request; record in the ledger what a failure means for the user's money."""
    try:
        return client.submit(request, on_answer=on_answer)
    except MaybeChargedError as exc:
        unrecorded = try_to_record(ledger.set_state, local_id, OUTCOME_UNKNOWN, exc.message)
        exc.hint = (
            unrecorded or f"it is recorded as task {local_id} in `soul history`"
        ) + f"; {exc.hint or ''}"
        raise
    except SoulError as exc:
        # Refused or never sent: the server took nothing, so nothing was charged. (If the
        # ledger cannot say so, the line stays claimed: never sent again, not re-sent.)
        try_to_record(ledger.set_refused, local_id, f"not submitted: {exc.message}")
        raise
    except STOPS as stop:
        message = f"{stop_word(stop)} while submitting; the request may have been charged"
        unrecorded = try_to_record(ledger.set_state, local_id, OUTCOME_UNKNOWN, message)
        raise SoulError(
            message,
            hint=unrecorded or f"it is recorded as task {local_id} in `soul history`",
            exit_code=stop_exit_code(stop),
        ) from None


def try_to_record(write: Callable[..., None], *args: object) -> str:
    """A ledger write whose failure must not hide what is being reported: '' if it worked,
    else what went wrong."""
    try:
        write(*args)
    except ConfigError as exc:
        return f"the task ledger could not record it: {exc.message}"
    return ""


def record_task_id(
    ledger: Ledger,
    local_id: int,
    task_id: str,
    *,
    request: GenerationRequest,
    out_dir: str | None,
) -> None:
    """Write the task id to the ledger, or failing that to the journal, and never lose it."""
    try:
        ledger.set_remote_id(local_id, task_id)
        return
    except ConfigError as exc:
        problem = exc.message
    kept = "the next soul run records it"
    where = ledger.journal
    # The seed and the prompt's start let the next run check it folds into the right row.
    record = {
        "ledger_row": local_id,
        "task_id": task_id,
        "seed": request.seed,
        "prompt_start": request.prompt[:64],
    }
    try:
        if where is None:
            raise OSError("no journal beside this ledger")
        journal.append(where, record)
    except OSError as exc:
        kept = f"it could not be kept anywhere either, {exc}: note the id"
    raise TaskUnrecordedError(
        f"task {task_id} was submitted and charged ({format_ptc(request.price)} PTC), "
        f"but the task ledger cannot record it: {problem}",
        task_id=task_id,
        hint=f"get its images with `{resume_command(task_id, out_dir)}`; {kept}",
    )
