"""`soul fetch`: resume unfinished tasks, or save or show one; it never submits anything."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from soulcli.commands import new_app
from soulcli.errors import ExitCode, SoulError, UsageError
from soulcli.options import ShowOption, TimeoutOption
from soulcli.resume import (
    already_saved,
    followed_elsewhere,
    images_dir,
    refuse_if_followed,
    take_over_unfinished,
)

if TYPE_CHECKING:
    from soulcli.client import ApiClient
    from soulcli.config import Settings
    from soulcli.follow import Outcome
    from soulcli.ledger import Ledger, TaskRecord


def fetch(
    task_id: Annotated[
        str | None,
        typer.Argument(
            help="A task id, or a local id from `soul history`. A task soul submitted is "
            "saved into the directory it was submitted with; any other is only shown, "
            "unless --out. Omit it to resume every unfinished task.",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            "-w",
            help="Poll until the task finishes (with no id, fetch always waits).",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="Save the images here (default: the directory each task was submitted with).",
        ),
    ] = None,
    json_: Annotated[
        bool,
        typer.Option("--json", help="Print JSON on stdout: one object per task (JSON Lines)."),
    ] = False,
    timeout: TimeoutOption = None,
    last: Annotated[
        bool,
        typer.Option("--last", help="Fetch the newest task in the ledger, whatever its state."),
    ] = False,
    show: ShowOption = None,
) -> None:
    """Resume unfinished tasks and save their images, or save or show one task.

    With no id, every unfinished task in the ledger (left by Ctrl-C, a timeout or
    --no-wait) is waited for, oldest first, and saved into the directory it was
    submitted with. With an id, a task soul submitted is saved there too (--wait
    waits for it); any other task is only shown, unless --out. It never submits.

    \b
    Examples:
      soul fetch                 # finish everything left behind
      soul fetch 12 --wait       # task 12 of `soul history`, into its directory
      soul fetch higgsfield_472f8f0319ac -o pics
    """
    from soulcli.config import effective_settings
    from soulcli.ledger import Ledger
    from soulcli.waiting import DEFAULT_WAIT_TIMEOUT

    settings = effective_settings()
    limit = timeout or DEFAULT_WAIT_TIMEOUT
    show_images = settings.show if show is None else show
    with Ledger.open() as ledger:
        if last:
            if task_id is not None:
                raise UsageError("give a task id or --last, not both")
            resume_last(ledger, settings, out=out, as_json=json_, timeout=limit, show=show_images)
        elif task_id is None:
            resume_all(ledger, settings, out=out, as_json=json_, timeout=limit, show=show_images)
        else:
            by_id(
                ledger,
                settings,
                task_id.strip(),
                wait=wait,
                out=out,
                as_json=json_,
                timeout=limit,
                show=show_images,
            )


# A problem every other task would meet too (or the user's stop): it ends a resume of
# many tasks at once instead of being reported for one task and passed over.
_ENDS_EVERYTHING = (ExitCode.INTERRUPTED, ExitCode.TERMINATED, ExitCode.AUTH, ExitCode.CONFIG)


def resume_all(
    ledger: Ledger,
    settings: Settings,
    *,
    out: Path | None,
    as_json: bool,
    timeout: float,
    show: bool = False,
) -> None:
    """Finish every unfinished ledger task, oldest first, each into its recorded directory.

    One after another, within one overall `timeout`: the server works on all of them
    at once, so waiting for the first is time the others use too. Each task still gets
    at least one look, and its images if it has finished.

    The exit code is that of the first task that did not complete (in the order they
    were resumed: TIMEOUT, PARTIAL, TASK_FAILED, DOWNLOAD, ...), else MAYBE_CHARGED if
    this run found rows that a soul killed while submitting left without a task id,
    else 0. A stop (Ctrl-C, SIGTERM) or a refused key ends the run with its own code.
    """
    import time

    from soulcli import ui
    from soulcli.follow import open_client

    # Rows a killed soul left half-submitted: told once, here, as they are found.
    maybe_charged = ledger.settle_abandoned()
    for local_id in maybe_charged:
        _say_maybe_charged(ledger, local_id)
    from soulcli.config import check_base_url

    api_host = check_base_url(settings.base_url)
    mine, busy, elsewhere = take_over_unfinished(ledger, api_host)
    for record in elsewhere:
        # A task lives on the API it was sent to (the offline demo's fake, say): asking
        # another one for it would only fail, on every `soul fetch` from now on.
        ui.say(
            f"soul: skipping task {record.remote_id}: it was sent to {record.api_host}, "
            f"not {api_host}; resume it with SOUL_BASE_URL={record.api_host} soul fetch"
        )
    if not mine and not maybe_charged:
        _nothing_to_resume(busy)
    for record, pid in busy:
        ui.say(
            f"soul: skipping task {record.remote_id}: soul process {pid} is following it "
            "and saves its images itself"
        )
    if not mine:
        raise SoulError(
            "no unfinished task to resume, but the tasks named above may have been charged",
            hint="see `soul history --state outcome_unknown`",
            exit_code=ExitCode.MAYBE_CHARGED,
        )
    total = len(mine)
    if total > 1:
        ui.say(f"soul: resuming {total} unfinished tasks")
    with open_client(settings) as client:
        deadline = time.monotonic() + timeout
        codes = [
            _resume_one(
                client,
                ledger,
                record,
                out=out,
                as_json=as_json,
                show=show,
                # what is left of it, to a tenth of a second ("after 3s", not 2.99999s)
                timeout=round(max(0.0, deadline - time.monotonic()), 1),
                position=f"[{number}/{total}] " if total > 1 else "",
            )
            for number, record in enumerate(mine, 1)
        ]
    problems = [code for code in codes if code != ExitCode.OK]
    if total > 1:
        ui.say(f"soul: {total - len(problems)} of {total} tasks completed")
    code = problems[0] if problems else ExitCode.MAYBE_CHARGED if maybe_charged else ExitCode.OK
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


def _nothing_to_resume(busy: list[tuple[TaskRecord, int]]) -> None:
    """Raise the error for a `soul fetch` that found no task to resume (and nothing to say)."""
    if busy:
        named = [f"task {record.remote_id} (soul process {pid})" for record, pid in busy]
        raise SoulError(
            "no unfinished task to resume: other soul processes are following "
            + ", ".join(named[:3])
            + (f" and {len(named) - 3} more" if len(named) > 3 else ""),
            exit_code=ExitCode.NOT_FOUND,
        )
    raise SoulError(
        "no unfinished task to resume", hint="see `soul history`", exit_code=ExitCode.NOT_FOUND
    )


def _say_maybe_charged(ledger: Ledger, local_id: int) -> None:
    from soulcli import ui
    from soulcli.text import shorten

    record = ledger.get(local_id)
    prompt = f" ({shorten(record.prompt, 40)!r})" if record is not None else ""
    ui.say(
        f"soul: task {local_id}{prompt} never got a task id: the soul process sending it "
        "stopped, and it may have been charged (check your 302.AI task log before sending "
        "it again)"
    )


def _resume_one(
    client: ApiClient,
    ledger: Ledger,
    record: TaskRecord,
    *,
    out: Path | None,
    as_json: bool,
    timeout: float,
    position: str,
    show: bool = False,
) -> ExitCode:
    """Resume one of many tasks; its problem is reported here and returned as its exit code."""
    from soulcli import ui
    from soulcli.text import shorten

    try:
        out_dir = images_dir(record, out)
        ui.say(
            f"soul: {position}resuming task {record.remote_id} "
            f"({shorten(record.prompt, 40)!r}) into {out_dir}"
        )
        return _follow_recorded(
            client, ledger, record, out_dir, timeout=timeout, as_json=as_json, show=show
        )
    except SoulError as exc:
        if exc.exit_code in _ENDS_EVERYTHING:
            raise
        hint = f" ({exc.hint})" if exc.hint else ""
        ui.say(f"soul: error: {exc.message}{hint}")
        return exc.exit_code


def resume_last(
    ledger: Ledger,
    settings: Settings,
    *,
    out: Path | None,
    as_json: bool,
    timeout: float,
    show: bool = False,
) -> None:
    """`--last`: report (or finish) the newest ledger task, whatever its state."""
    from soulcli import ui
    from soulcli.follow import open_client
    from soulcli.ledger import OUTCOME_UNKNOWN
    from soulcli.text import shorten

    record = ledger.newest()
    if record is None:
        raise SoulError(
            "no task in the ledger yet", hint="see `soul history`", exit_code=ExitCode.NOT_FOUND
        )
    if record.remote_id is None:
        code = ExitCode.MAYBE_CHARGED if record.state == OUTCOME_UNKNOWN else ExitCode.NOT_FOUND
        raise SoulError(
            f"task {record.id} never got a task id; it is {record.state}: "
            f"{record.error or 'no details'}",
            exit_code=code,
        )
    out_dir = images_dir(record, out)
    if already_saved(record, out_dir):
        raise typer.Exit(int(report_record(record, as_json=as_json, show=show)))
    refuse_if_followed(ledger, record)
    ui.say(
        f"soul: resuming task {record.remote_id} ({shorten(record.prompt, 40)!r}) into {out_dir}"
    )
    with open_client(settings) as client:
        code = _follow_recorded(
            client, ledger, record, out_dir, timeout=timeout, as_json=as_json, show=show
        )
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


def _follow_recorded(
    client: ApiClient,
    ledger: Ledger,
    record: TaskRecord,
    out_dir: Path,
    *,
    timeout: float,
    as_json: bool,
    show: bool = False,
) -> ExitCode:
    """Wait for a ledger task, save its images as generate would have, and report them."""
    from soulcli.commands.common import SpinnerWatcher, report
    from soulcli.follow import FollowOptions, Tracked, follow_task, request_json
    from soulcli.models import format_ptc

    assert record.remote_id is not None  # only tasks with a task id are followed
    outcome = follow_task(
        client,
        record.remote_id,
        out_dir=out_dir,
        timeout=timeout,
        price=format_ptc(record.price_ptc),
        tracked=Tracked(ledger, record.id, record.request()),
        # a batch line's `name`, if any; the spinner counts from the submission
        options=FollowOptions(
            watcher=SpinnerWatcher(), stem=record.image_stem, submitted_at=record.created_at
        ),
    )
    return report(outcome, as_json=as_json, extra=request_json(record.request()), show=show)


def report_record(record: TaskRecord, *, as_json: bool, show: bool = False) -> ExitCode:
    """Print a finished ledger task like generate would have: paths, or one JSON object."""
    from soulcli import ui
    from soulcli.follow import request_json

    saved = [i for i in record.images if i.get("path")]
    missing = [i for i in record.images if not i.get("path")]
    if as_json:
        ui.emit_json(
            {
                "task_id": record.remote_id,
                "status": record.state,
                **request_json(record.request()),
                "images": [
                    {
                        "index": i["index"],
                        "url": i["url"],
                        "path": i["path"],
                        "variant": i.get("variant", "raw"),
                    }
                    for i in saved
                ],
                "missing": [
                    {"index": i["index"], "status": i["status"], "reason": ""} for i in missing
                ],
            }
        )
    else:
        for image in saved:
            ui.emit(str(image["path"]))
        if show:
            from soulcli.commands.show import show_pictures, task_pictures

            show_pictures(task_pictures(record), only_on_terminal=True)
    return {"completed": ExitCode.OK, "partial": ExitCode.PARTIAL}.get(
        record.state, ExitCode.TASK_FAILED
    )


def by_id(
    ledger: Ledger,
    settings: Settings,
    task_id: str,
    *,
    wait: bool,
    out: Path | None,
    as_json: bool,
    timeout: float,
    show: bool = False,
) -> None:
    """Save one task's images, or only look at it; update its ledger row if soul submitted it.

    A task in the ledger is saved into the directory it was submitted with (or --out);
    a task soul did not submit is only shown, unless --out says where to save it.
    """
    from soulcli import ui
    from soulcli.commands.common import SpinnerWatcher, report
    from soulcli.errors import resume_command
    from soulcli.follow import FollowOptions, Tracked, follow_task, open_client, request_json
    from soulcli.models import format_ptc, valid_task_id
    from soulcli.outdir import prepare_out_dir

    record = ledger.get(task_id)
    if record is not None and record.remote_id is None:
        raise SoulError(
            f"task {record.id} never got a task id ({record.state})", exit_code=ExitCode.NOT_FOUND
        )
    remote_id = record.remote_id if record is not None and record.remote_id else task_id
    if not valid_task_id(remote_id):
        raise UsageError(
            f"{task_id!r} is not a task id", hint="task ids look like higgsfield_472f8f0319ac"
        )
    if out is None and record is not None and record.out_dir:
        out_dir = _into_recorded_dir(ledger, record, wait=wait, as_json=as_json, show=show)
    else:
        out_dir = prepare_out_dir(Path(out).expanduser()) if out is not None else None
        if record is not None and (wait or out_dir is not None):
            refuse_if_followed(ledger, record)  # two soul processes never follow one task
    tracked = Tracked(ledger, record.id, record.request()) if record is not None else None
    with open_client(settings) as client:
        outcome = follow_task(
            client,
            remote_id,
            out_dir=out_dir,
            timeout=timeout,
            price=format_ptc(record.price_ptc) if record else "?",
            wait=wait,
            tracked=tracked,
            options=FollowOptions(
                watcher=SpinnerWatcher(),
                stem=record.image_stem if record else None,
                submitted_at=record.created_at if record else None,  # else: from now
            ),
        )
    if out_dir is None:
        show_status(outcome, as_json=as_json)
        return
    if outcome.snapshot.finished:
        extra: dict[str, Any] = {"jobs": jobs_json(outcome)}
        if record is not None:
            extra.update(request_json(record.request()))
        code = report(outcome, as_json=as_json, extra=extra, show=show)
        if code != ExitCode.OK:
            raise typer.Exit(int(code))
        return
    # Not finished and not waiting: save what is ready, say how to get the rest.
    if as_json:
        show_status(outcome, as_json=True)
    else:
        for image in outcome.saved:
            ui.emit(str(image.path))
    ui.say(
        f"soul: task {remote_id} is still {outcome.snapshot.phase}; finish with: "
        f"{resume_command(remote_id, out_dir)}"
    )


def _into_recorded_dir(
    ledger: Ledger, record: TaskRecord, *, wait: bool, as_json: bool, show: bool = False
) -> Path | None:
    """The directory a ledger task was submitted with, where `soul fetch N` saves it.

    Its images all there already: they are reported, with no network at all. Another
    soul process following it: it saves them there itself, so this one only looks
    (with --wait, it is refused, as with --out). None means "only look".
    """
    from soulcli import ui
    from soulcli.text import shorten

    out_dir = images_dir(record, None)
    if already_saved(record, out_dir):
        raise typer.Exit(int(report_record(record, as_json=as_json, show=show)))
    if wait:
        refuse_if_followed(ledger, record)
    else:
        pid = followed_elsewhere(ledger, record)
        if pid is not None:
            ui.say(
                f"soul: task {record.remote_id} is being followed by soul process {pid}, "
                f"which saves its images into {out_dir}; showing its status"
            )
            return None
    ui.say(f"soul: saving task {record.remote_id} ({shorten(record.prompt, 40)!r}) into {out_dir}")
    return out_dir


def jobs_json(outcome: Outcome) -> list[dict[str, Any]]:
    return [{"index": j.index, "status": j.status, "url": j.url} for j in outcome.snapshot.jobs]


def show_status(outcome: Outcome, *, as_json: bool) -> None:
    """Print the task status: one JSON object, or a status line and a line per image."""
    from soulcli import ui
    from soulcli.text import one_line

    snapshot = outcome.snapshot
    if as_json:
        payload: dict[str, Any] = {
            "task_id": snapshot.task_id,
            "status": snapshot.outcome,
            "finished": snapshot.finished,
            "jobs": jobs_json(outcome),
        }
        if outcome.saved or outcome.missing:
            payload["images"] = outcome.images_json()
            payload["missing"] = outcome.missing_json()
        ui.emit_json(payload)
        return
    total = max(4, len(snapshot.jobs))
    ui.emit(f"{snapshot.task_id}\t{snapshot.outcome}\t{snapshot.done_count}/{total} done")
    for job in snapshot.jobs:
        ui.emit(f"{job.index}\t{one_line(job.status, 30)}\t{one_line(job.url or '-', 500)}")


app = new_app()
app.command()(fetch)
