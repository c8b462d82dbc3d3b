"""What a running batch shows on stderr: a live display on a terminal, event lines otherwise."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from soulcli import ui
from soulcli.batchrun import BatchEvents, LineResult, LineWatcher
from soulcli.follow import Watcher
from soulcli.models import format_ptc
from soulcli.text import one_line

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager

    from rich.console import Console, ConsoleOptions, RenderableType
    from rich.text import Text

    from soulcli.ledger import TaskRecord
    from soulcli.models import TaskSnapshot


@dataclass
class Running:
    number: int
    prompt: str
    task_id: str | None = None
    phase: str = "submitting"
    done: int = 0
    started: float = 0.0


class BatchProgress(BatchEvents):
    """Counts and per-line state, shared by worker threads; renders itself for rich.Live.

    Each finished line's image paths (or JSON object) go to stdout as it finishes.
    """

    def __init__(self, total: int, *, already_done: int, live: bool, as_json: bool = False) -> None:
        super().__init__(total, already_done=already_done)
        self.running: dict[int, Running] = {}
        self.live = live
        self.as_json = as_json
        self.began = time.monotonic()

    def _log(self, message: str) -> None:
        if not self.live:
            ui.say(f"soul: {message}")

    def started(self, number: int, prompt: str, resumed_task: str | None) -> None:
        with self._lock:
            self.running[number] = Running(
                number,
                prompt,
                resumed_task,
                "resuming" if resumed_task else "submitting",
                started=time.monotonic(),
            )
        if resumed_task:
            self._log(f"line {number}: resuming task {resumed_task}")

    def submitted(self, number: int, task_id: str, price: Decimal) -> None:
        self.charged(price)
        with self._lock:
            if number in self.running:
                self.running[number].task_id = task_id
                self.running[number].phase = "queued"
        self._log(f"line {number}: submitted task {task_id} ({format_ptc(price)} PTC)")

    def updated(self, number: int, snapshot: TaskSnapshot) -> None:
        with self._lock:
            if number in self.running:
                self.running[number].phase = snapshot.phase
                self.running[number].done = snapshot.done_count

    def finished(self, number: int, state: str, detail: str) -> None:
        with self._lock:  # one step: the display never counts a line twice
            self.running.pop(number, None)
            self._count(state)
        self._log(f"line {number}: {state}" + (f": {one_line(detail, 200)}" if detail else ""))

    def watcher(self, number: int) -> Watcher:
        return _LineWatcher(self, number)

    def result(self, result: LineResult) -> None:
        from soulcli.follow import request_json

        if result.earlier is not None:
            emit_record(result.earlier, result.line.number, as_json=self.as_json)
            return
        outcome = result.outcome
        if outcome is None or result.request is None:
            return  # not sent, or stopped: the summary says so
        if self.as_json:
            ui.emit_json(
                {
                    "line": result.line.number,
                    "task_id": outcome.snapshot.task_id,
                    "status": outcome.status,
                    **request_json(result.request),
                    "images": outcome.images_json(),
                    "missing": outcome.missing_json(),
                }
            )
        else:
            for image in outcome.saved:
                ui.emit(str(image.path))

    def around_run(self) -> AbstractContextManager[object]:
        from contextlib import nullcontext

        if not self.live:
            return nullcontext()
        from rich.live import Live

        return Live(
            self,
            console=ui.stderr_console(),
            refresh_per_second=4,
            transient=True,
            # Rich would print what goes to stdout above the display, on stderr: only
            # right when stdout is that terminal too. Redirected, the paths are data.
            redirect_stdout=sys.stdout.isatty(),
        )

    def stopping(self) -> None:
        ui.say("soul: stopping: tasks in flight stay in the ledger")

    def counts(self) -> str:
        return (
            f"{self.completed} done · {self.failed} failed · {len(self.running)} running · "
            f"{format_ptc(self.spent)} PTC spent"
        )

    def headline(self, width: int) -> Text:
        """`batch 3 of 10 · 12s · 0.3 PTC spent`, then the counts and a bar if they fit."""
        from rich.text import Text

        finished = self.completed + self.failed
        elapsed = ui.format_elapsed(time.monotonic() - self.began)
        essential = (
            f"batch {finished} of {self.total} · {elapsed} · {format_ptc(self.spent)} PTC spent"
        )
        if len(essential) > width:  # "batch 100 of 100 · 12m05s · 19.8 PTC spent" at 40
            essential = f"{finished}/{self.total} · {elapsed} · {format_ptc(self.spent)} PTC"
        counts = f" · {self.completed} done · {self.failed} failed · {len(self.running)} running"
        line = Text(essential, style="bold")
        if len(essential) + len(counts) <= width:
            line.append(counts)
        room = width - len(line) - 1
        if room >= 12:  # a bar narrower than that says nothing
            size = min(room, 40)
            filled = round(size * finished / self.total) if self.total else size
            line.append(" ")
            line.append("━" * filled, style="green")
            line.append("━" * (size - filled), style="dim")
        line.truncate(width, overflow="ellipsis")
        return line

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        from rich.text import Text

        width = options.max_width
        with self._lock:
            yield self.headline(width)
            rows = sorted(self.running.values(), key=lambda r: r.number)
            # One line per task, cut to the width (never wrapped): the task id goes
            # last so that a narrow terminal loses it first.
            for r in rows[:12]:
                text = (
                    f"  line {r.number}: {r.phase}, {r.done}/4 · "
                    f"{ui.format_elapsed(time.monotonic() - r.started)} · "
                    f"{one_line(r.prompt, 80)} · {r.task_id or '…'}"
                )
                yield Text(text, style="dim", no_wrap=True, overflow="ellipsis")
        if len(rows) > 12:
            yield Text(f"  … and {len(rows) - 12} more", style="dim")


class _LineWatcher(LineWatcher):
    """One batch line's task: its polls feed the display; retries and warnings are said."""

    def retrying(self, task_id: str, reason: str) -> None:
        if not ui.stderr_is_terminal():
            ui.say(f"soul: retrying task {task_id}: {one_line(reason, 120)}")

    def warning(self, message: str) -> None:
        ui.warn(message)


def emit_record(record: TaskRecord, number: int, *, as_json: bool) -> None:
    """Print a line finished in an earlier run as if it had just finished."""
    from soulcli.follow import request_json

    if as_json:
        ui.emit_json(
            {
                "line": number,
                "task_id": record.remote_id,
                "status": record.state,
                **request_json(record.request()),
                "images": [i for i in record.images if i.get("path")],
                "missing": [i for i in record.images if not i.get("path")],
                "resumed": True,
            }
        )
    else:
        for path in record.saved_paths:
            ui.emit(path)
