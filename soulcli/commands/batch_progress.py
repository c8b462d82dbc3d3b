"""What a running batch shows on stderr: a live display on a terminal, event lines otherwise."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from soulcli import ui
from soulcli.models import format_ptc
from soulcli.text import one_line, shorten

if TYPE_CHECKING:
    from rich.console import RenderableType

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
        self.completed = already_done
        self.failed = 0
        self.spent = Decimal(0)
        self.running: dict[int, Running] = {}
        self.live = live
        self._lock = threading.Lock()
        self._bar: Any = None
        if live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("batch"),
                BarColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
            )
            self._bar_task = self._bar.add_task("", total=total, completed=already_done)

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
            if self._bar is not None:
                self._bar.update(self._bar_task, completed=self.completed + self.failed)
        self._log(f"line {number}: {state}" + (f": {one_line(detail, 200)}" if detail else ""))

    def counts(self) -> str:
        return (
            f"{self.completed} done · {self.failed} failed · {len(self.running)} running · "
            f"{format_ptc(self.spent)} PTC spent"
        )

    def __rich__(self) -> RenderableType:
        from rich.console import Group
        from rich.text import Text

        assert self._bar is not None
        with self._lock:
            self._bar.update(self._bar_task, description=self.counts())
            rows = sorted(self.running.values(), key=lambda r: r.number)
            lines = [
                Text(
                    f"  line {r.number}: {r.phase}, {r.done}/4 · "
                    f"{int(time.monotonic() - r.started)}s · {r.task_id or '…'} · "
                    f"{shorten(one_line(r.prompt, 80), 40)}",
                    style="dim",
                )
                for r in rows[:12]
            ]
        if len(rows) > 12:
            lines.append(Text(f"  … and {len(rows) - 12} more", style="dim"))
        return Group(self._bar.get_renderable(), *lines)
