"""Ctrl-C and SIGTERM: soul's own exceptions, held while a fresh task id is being recorded."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from soulcli.errors import STOPS, ExitCode, Interrupted, TaskStoppedError, Terminated

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install() -> None:
    """Make SIGINT raise Interrupted and SIGTERM raise Terminated in the main thread.

    A signal that was ignored when soul started (a background job of a script) stays
    ignored, as Unix tools leave it.
    """
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _raise_stop)


def block() -> None:
    """Keep SIGINT and SIGTERM pending (and so without effect) until soul exits.

    For the very end of a run: the work is done or the last line is being written.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    # A second signal while soul is stopping ends it at once: every ledger row is
    # always in a state that survives that, as it survives kill -9.
    for each in STOP_SIGNALS:
        if signal.getsignal(each) is not signal.SIG_IGN:
            signal.signal(each, _exit_at_once)
    raise Interrupted() if signum == signal.SIGINT else Terminated()


def exit_code_for(signum: int) -> ExitCode:
    return ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.TERMINATED


def _exit_at_once(signum: int, frame: FrameType | None, last_words: str = "") -> None:
    word = "interrupted" if signum == signal.SIGINT else "terminated"
    message = f"soul: error: {word} again; stopped at once"
    if last_words:
        message += f"; {last_words}"
    os.write(2, (message + "\n").encode("utf-8", "replace"))
    os._exit(int(exit_code_for(signum)))


class Held:
    """The signal that arrived while held, if any; deliver() raises it as it would have been."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def deliver(self) -> None:
        """Raise the held signal now, through whatever handler is installed again."""
        if self.signum is not None:
            signum, self.signum = self.signum, None
            signal.raise_signal(signum)


@contextmanager
def held(last_words: str = "") -> Iterator[Held]:
    """Hold Ctrl-C and SIGTERM for a short block that must not be cut in half.

    Only the main thread receives signals, so elsewhere this does nothing. A second
    signal during the block stops soul at once, printing `last_words` (for example a
    task id and the command that resumes it).
    """
    holder = Held()
    if threading.current_thread() is not threading.main_thread():
        yield holder
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        if holder.signum is not None:
            _exit_at_once(signum, frame, last_words)
        holder.signum = signum

    previous: dict[int, Any] = {each: signal.signal(each, hold) for each in STOP_SIGNALS}
    try:
        yield holder
    finally:
        for each, handler in previous.items():
            signal.signal(each, signal.SIG_DFL if handler is None else handler)


@contextmanager
def naming_task(
    task_id: str, out_dir: Path | str | None, doing: str = "following"
) -> Iterator[None]:
    """Turn a stop inside the block into an error that names the task and how to resume it."""
    try:
        yield
    except STOPS as stop:
        raise TaskStoppedError.by_signal(task_id, out_dir, stop, doing=doing) from None
