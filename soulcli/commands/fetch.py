"""`soul fetch`: show a task's status and results, optionally wait and download; never submits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from soulcli.errors import ExitCode, UsageError
from soulcli.options import JsonFlag, OutDir, TimeoutOption

if TYPE_CHECKING:
    from soulcli.commands.common import Outcome


def fetch(
    task_id: Annotated[str, typer.Argument(help="The task id that generate printed.")],
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Poll until the task finishes.")
    ] = False,
    out: OutDir = None,
    json_: JsonFlag = False,
    timeout: TimeoutOption = None,
) -> None:
    """Show a task's status and image URLs; with --out, save its images.

    Example: soul fetch higgsfield_472f8f0319ac --wait --out ./pics
    """
    from soulcli import ui
    from soulcli.commands.common import open_client, report, resume_command, wait_and_save
    from soulcli.config import effective_settings
    from soulcli.downloads import prepare_out_dir
    from soulcli.models import valid_task_id
    from soulcli.waiting import DEFAULT_WAIT_TIMEOUT

    task_id = task_id.strip()
    if not valid_task_id(task_id):
        raise UsageError(
            f"{task_id!r} is not a task id", hint="task ids look like higgsfield_472f8f0319ac"
        )
    settings = effective_settings()
    out_dir = prepare_out_dir(Path(out).expanduser()) if out is not None else None
    with open_client(settings) as client:
        outcome = wait_and_save(
            client,
            task_id,
            out_dir=out_dir,
            timeout=timeout or DEFAULT_WAIT_TIMEOUT,
            price="?",
            wait=wait,
        )
    if out_dir is None:
        show_status(outcome, as_json=json_)
        return
    if outcome.snapshot.finished:
        code = report(outcome, as_json=json_, extra={"jobs": jobs_json(outcome)})
        if code != ExitCode.OK:
            raise typer.Exit(int(code))
        return
    # Not finished and not waiting: save what is ready, say how to get the rest.
    if json_:
        show_status(outcome, as_json=True)
    else:
        for image in outcome.saved:
            ui.emit(str(image.path))
    ui.say(
        f"soul: task {task_id} is still {outcome.snapshot.phase}; finish with: "
        f"{resume_command(task_id, out_dir)}"
    )


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
