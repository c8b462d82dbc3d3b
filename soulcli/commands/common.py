"""What generate, fetch and batch show on a terminal: the spinner, warnings, the report."""

from __future__ import annotations

import shlex
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from soulcli import ui
from soulcli.errors import ExitCode
from soulcli.follow import Outcome, Watcher
from soulcli.text import one_line

if TYPE_CHECKING:
    from soulcli.models import TaskSnapshot


class SpinnerWatcher(Watcher):
    """Follows one task on stderr: a spinner line on a terminal, retries as lines elsewhere."""

    def __init__(self) -> None:
        self.line: ui.WaitLine | None = None

    def waiting(
        self, task_id: str, price: str, started_at: float | None
    ) -> AbstractContextManager[object]:
        self.line = ui.WaitLine(task_id, price, started_at=started_at)
        return ui.spinner(self.line)

    def updated(self, snapshot: TaskSnapshot) -> None:
        if self.line is not None:
            self.line.update(snapshot)

    def retrying(self, task_id: str, reason: str) -> None:
        if self.line is not None:
            self.line.retrying = reason
        if not ui.stderr_is_terminal():
            ui.say(f"soul: retrying task {task_id}: {one_line(reason, 120)}")

    def downloading(self, task_id: str) -> None:
        if self.line is not None:
            self.line.downloading = True

    def warning(self, message: str) -> None:
        ui.warn(message)


def report(
    outcome: Outcome, *, as_json: bool, extra: dict[str, Any] | None = None, show: bool = False
) -> ExitCode:
    """Print saved paths (or one JSON object) on stdout and problems on stderr."""
    task_id = outcome.snapshot.task_id
    for image in outcome.saved:
        if image.note and image.note != "already saved":
            ui.warn(f"image {image.index}: {image.note}; saved as {image.path}")
        if image.variant == "min":
            ui.warn(
                f"image {image.index} is the smaller preview: the full image failed "
                f"({one_line(image.fallback_reason, 120)}); "
                f"`soul fetch {shlex.quote(task_id)} --out {shlex.quote(str(image.path.parent))}`"
                " tries the full image again"
            )
    for missing in outcome.missing:
        reason = f": {one_line(missing.reason, 160)}" if missing.reason else ""
        ui.say(
            f"soul: image {missing.index} of task {task_id} not delivered "
            f"({one_line(missing.status, 40)}){reason}"
        )
    if as_json:
        payload: dict[str, Any] = {"task_id": task_id, "status": outcome.status}
        payload.update(extra or {})
        payload["images"] = outcome.images_json()
        payload["missing"] = outcome.missing_json()
        ui.emit_json(payload)
    else:
        for image in outcome.saved:
            ui.emit(str(image.path))
        if show and (outcome.saved or outcome.missing):
            from soulcli.commands.show import outcome_pictures, show_pictures

            show_pictures(outcome_pictures(outcome, extra or {}), only_on_terminal=True)
    code = outcome.exit_code
    if code == ExitCode.DOWNLOAD:
        ui.say(
            f"soul: retry the downloads with `soul fetch` "
            f"(or `soul fetch {shlex.quote(task_id)} --out DIR`)"
        )
    return code
