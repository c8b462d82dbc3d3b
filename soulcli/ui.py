"""Terminal output for the commands: data on stdout, talk and the spinner on stderr."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from soulcli.text import one_line

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType

    from soulcli.models import TaskSnapshot


def say(message: str) -> None:
    """Write one line of talk to stderr (never to stdout, which carries data)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def warn(message: str) -> None:
    say(f"soul: warning: {message}")


_STDOUT_LOCK = threading.Lock()


def emit(line: str) -> None:
    """Write one line of data to stdout, flushed so pipelines see it at once (thread-safe)."""
    with _STDOUT_LOCK:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            reader_went_away()


def emit_wrapped(line: str, indent: str) -> None:
    """One line of data; on a terminal narrower than it, wrapped at spaces with `indent`
    (the terminal would cut words in two). Piped, it stays one line for grep."""
    width = terminal_size().columns if sys.stdout.isatty() else None
    if width is None or len(line) <= width:
        emit(line)
        return
    import textwrap

    for part in textwrap.wrap(line, width=width, subsequent_indent=indent):
        emit(part)


def reader_went_away() -> NoReturn:
    """The reader closed the pipe (`soul styles | head`): stop quietly, as Unix tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the final flush at exit cannot fail again
    except OSError:
        pass
    raise SystemExit(141)  # 128 + SIGPIPE, what a shell reports for a tool killed by SIGPIPE


def emit_json(payload: Any) -> None:
    """Write one JSON document to stdout on one line (JSON Lines friendly)."""
    import json

    emit(json.dumps(payload, ensure_ascii=False))


def format_elapsed(seconds: float) -> str:
    """`12s`, `3m05s`, `1h02m`: short enough for a narrow terminal."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=False)


class WaitLine:
    """The spinner's text: what the task is doing, how long it has taken, what it costs.

    The time counts from `started_at` (wall clock, `time.time()`) when the task's
    submission time is known, so a resumed task shows its real age; else from now.
    """

    def __init__(self, task_id: str, price: str, started_at: float | None = None) -> None:
        from rich.spinner import Spinner

        self.task_id = task_id
        self.price = price
        self.started = time.monotonic()
        self.started_at = started_at
        self.phase = "queued"
        self.done = 0
        self.total = 4
        self.retrying = ""
        self.downloading = False
        self._spinner = Spinner("dots", style="cyan")

    def update(self, snapshot: TaskSnapshot) -> None:
        self.phase = snapshot.phase
        self.done = snapshot.done_count
        self.total = max(4, len(snapshot.jobs))
        self.retrying = ""

    def elapsed(self) -> int:
        """Whole seconds since the submission (if known) or since this line was made."""
        if self.started_at is not None:
            return max(0, int(time.time() - self.started_at))  # never negative on a clock step
        return int(time.monotonic() - self.started)

    def text(self) -> str:
        elapsed = format_elapsed(self.elapsed())
        if self.downloading:
            state = f"downloading {self.done} image{'s' if self.done != 1 else ''}"
        else:
            state = f"{self.phase}, {self.done} of {self.total} done"
        extra = f" (retrying: {one_line(self.retrying, 60)})" if self.retrying else ""
        return f"{state} · {elapsed} · {self.price} PTC{extra} · task {self.task_id}"

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        from rich.text import Text

        # One line, cut to the width: a wrapped spinner line leaves a trail on redraws.
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        frames = self._spinner.frames
        frame = frames[int(time.monotonic() * 1000 / self._spinner.interval) % len(frames)]
        line.append(frame, style="cyan")
        line.append(" " + self.text())
        line.truncate(options.max_width, overflow="ellipsis")
        yield line


@contextmanager
def spinner(line: WaitLine | None) -> Iterator[None]:
    """Show `line` with a spinner on stderr while the block runs, if stderr is a terminal."""
    if line is None or not stderr_is_terminal():
        yield
        return
    from rich.live import Live

    with Live(line, console=stderr_console(), refresh_per_second=8, transient=True):
        yield


def terminal_size() -> os.terminal_size:
    """The size of the terminal on stdout (COLUMNS/LINES win, as Rich and less honour them)."""
    import shutil

    return shutil.get_terminal_size((80, 24))


def page(text: str, *, allowed: bool = True) -> None:
    """Write `text` to stdout, through a pager when it is longer than the terminal.

    Like git: `PAGER` (default `less -FRX`: quit if one screen, keep colours and
    links, leave the text on screen), never when stdout is not a terminal, and an
    empty PAGER or `cat` means no pager.
    """
    lines = text.count("\n")
    pager = os.environ.get("PAGER", "less -FRX").strip()
    if (
        not allowed
        or not sys.stdout.isatty()
        or pager in ("", "cat")
        or lines < terminal_size().lines
    ):
        _write_all(text)
        return
    import shlex
    import shutil
    import signal
    import subprocess

    try:
        program = shlex.split(pager)[0]
    except (ValueError, IndexError):
        program = ""
    if shutil.which(program) is None:  # no less on this machine: print, as git does
        _write_all(text)
        return
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")  # as git does, for a PAGER=less without options
    try:
        proc = subprocess.Popen(pager, shell=True, stdin=subprocess.PIPE, env=env)
    except OSError:
        _write_all(text)
        return
    # The pager owns Ctrl-C while it runs (less uses it to stop a search), as in git:
    # soul ignores it, the pager (started before this) still gets it.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert proc.stdin is not None
        try:
            proc.stdin.write(text.encode("utf-8", "replace"))
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the reader quit the pager before the end: that is fine
        proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def _write_all(text: str) -> None:
    """Write text to stdout; a reader that went away ends soul quietly, as in emit()."""
    with _STDOUT_LOCK:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            reader_went_away()
