"""What a running batch shows on stderr: a live display on a terminal, event lines otherwise."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from soulcli import ui
from soulcli.models import format_ptc
from soulcli.text import one_line

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.console import Console, ConsoleOptions, RenderableType
    from rich.text import Text

    from soulcli.models import TaskSnapshot


@dataclass
class Running:
    number: int
    prompt: str
    task_id: str | None = None
    phase: str = "submitting"
    done: int = 0
    started: float = 0.0


class BatchProgress:
    """Counts and per-line state, shared by worker threads; renders itself for rich.Live."""

    def __init__(self, total: int, *, already_done: int, live: bool) -> None:
        self.total = total
        self.already_done = already_done
        self.completed = already_done
        self.failed = 0
        self.spent = Decimal(0)
        self.running: dict[int, Running] = {}
        self.live = live
        self.began = time.monotonic()
        self._lock = threading.Lock()

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

    def charged(self, price: Decimal) -> None:
        """Count a request the server took, whatever happens to it next."""
        with self._lock:
            self.spent += price

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
        with self._lock:
            self.running.pop(number, None)
            if state == "completed":
                self.completed += 1
            else:
                self.failed += 1
        self._log(f"line {number}: {state}" + (f": {one_line(detail, 200)}" if detail else ""))

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
