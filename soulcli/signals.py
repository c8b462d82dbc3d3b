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

# A second Ctrl-C while a task id is being recorded ends the CLI at once. The library
# turns this off: it must never end the program it runs in (the signal waits instead).
second_stop_exits = True


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


def _exit_at_once(signum: int, frame: FrameType | None) -> None:
    """Stop now; first name every task whose id is in hand but not yet in the ledger."""
    word = "interrupted" if signum == signal.SIGINT else "terminated"
    message = f"soul: error: {word} again; stopped at once"
    with _HOLDING_LOCK:
        words = [holder.last_words for holder in _HOLDING if holder.last_words]
    for each in words:
        message += f"; {each}"
    os.write(2, (message + "\n").encode("utf-8", "replace"))
    os._exit(int(exit_code_for(signum)))


class Held:
    """Signals held by `held()`: the one that came, and whether they still pass for now."""

    def __init__(self, last_words: str) -> None:
        self.signum: int | None = None
        # While passing, a signal acts as if nothing were held (the block is still
        # waiting for something worth holding, such as the answer to a POST).
        self.passing = False
        self.last_words = last_words

    def hold_from_now(self) -> None:
        self.passing = False

    def deliver(self) -> None:
        """Raise the held signal now, through whatever handler is installed again."""
        if self.signum is not None:
            signum, self.signum = self.signum, None
            signal.raise_signal(signum)


# Every block being held, in any thread: a stop at once prints their last words.
_HOLDING: set[Held] = set()
_HOLDING_LOCK = threading.RLock()  # also taken by a signal handler in the main thread


@contextmanager
def held(last_words: str = "", *, passing: bool = False) -> Iterator[Held]:
    """Hold Ctrl-C and SIGTERM for a block that must not be cut in half.

    Only the main thread receives signals, so elsewhere nothing is held; but anywhere,
    a signal that stops soul at once (a second Ctrl-C) first prints the block's
    `last_words` (for example a task id and the command that resumes it). With
    `passing`, signals act as usual until `hold_from_now()`.
    """
    holder = Held(last_words)
    holder.passing = passing  # before the handlers go in: no instant holds by mistake
    with _HOLDING_LOCK:
        _HOLDING.add(holder)
    try:
        if threading.current_thread() is not threading.main_thread():
            yield holder
        else:
            with _holding_signals(holder):
                yield holder
    finally:
        with _HOLDING_LOCK:
            _HOLDING.discard(holder)


@contextmanager
def _holding_signals(holder: Held) -> Iterator[None]:
    def hold(signum: int, frame: FrameType | None) -> None:
        if holder.passing:
            _pass_on(signum, frame, previous.get(signum))
        elif holder.signum is not None and second_stop_exits:
            _exit_at_once(signum, frame)
        else:
            holder.signum = signum

    previous: dict[int, Any] = {}
    for each in STOP_SIGNALS:
        if signal.getsignal(each) is not signal.SIG_IGN:  # ignored stays ignored
            previous[each] = signal.signal(each, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if signal.getsignal(signum) is hold:  # a passed-on stop may have moved on since
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def _pass_on(signum: int, frame: FrameType | None, handler: Any) -> None:
    """Act on a signal as the handler that `held()` replaced would have."""
    if callable(handler):
        handler(signum, frame)
    elif handler is not signal.SIG_IGN:  # the default action: end the process
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


@contextmanager
def naming_task(
    task_id: str, out_dir: Path | str | None, doing: str = "following"
) -> Iterator[None]:
    """Turn a stop inside the block into an error that names the task and how to resume it."""
    try:
        yield
    except STOPS as stop:
        raise TaskStoppedError.by_signal(task_id, out_dir, stop, doing=doing) from None


def wait_until_nothing_held(timeout: float) -> None:
    """Wait (at most `timeout` seconds) for every block holding a fresh task id, in any
    thread, to record it: for a stop that ends the process from outside those threads."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _HOLDING_LOCK:
            if not any(not holder.passing for holder in _HOLDING):
                return
        time.sleep(0.01)
