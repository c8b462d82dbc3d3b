"""The `soul` command's first and last code: Ctrl-C works while it loads; no teardown at exit."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType


def main() -> None:
    """Install a stop handler before the heavy imports, then run the CLI."""
    stops = {signal.SIGINT, signal.SIGTERM}
    for signum in stops:
        # Ignored at start (a background job of a script) stays ignored, as Unix tools do.
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _stop_while_loading)
    if hasattr(signal, "pthread_sigmask"):
        # A parent may leave these blocked (its mask is inherited): Ctrl-C must work. Only
        # now, so one already pending meets the handler above.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
    # `import httpx` also imports httpx's own command-line client (with Rich's progress
    # bars and Pygments: about a third of httpx's import time), which soul never runs.
    # A None in sys.modules stops that one import; httpx catches the ImportError and
    # goes on without its CLI. Only in the `soul` command: the library leaves httpx whole.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from soulcli.cli import main as run

    try:
        run()
    except SystemExit as done:
        _leave(done.code)


def _leave(code: object) -> None:
    """Exit with `code` without Python's teardown of every module and object.

    The teardown is work for nothing here (15-50 ms after a networked command, which
    loads httpx and OpenSSL): by now every ledger write is committed, every file
    closed, every thread joined and the pager waited for. Only the standard streams
    may hold output still, so they are flushed first.
    """
    import threading

    main = threading.main_thread()
    if any(t is not main and t.is_alive() and not t.daemon for t in threading.enumerate()):
        # A thread still working (one recording a task id, say) is never cut off:
        # Python's own exit waits for it.
        raise SystemExit(code)
    for stream in (sys.stdout, sys.stderr):
        # A reader gone or a stream closed: there is nothing left to keep.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    if code is None:
        os._exit(0)
    if isinstance(code, int):
        os._exit(code)
    raise SystemExit(code)  # a message for stderr: Python prints it as usual


def _stop_while_loading(signum: int, frame: FrameType | None) -> None:
    # Nothing has been sent or written yet, so stopping at once loses nothing.
    word, code = ("interrupted", 130) if signum == signal.SIGINT else ("terminated", 143)
    os.write(2, f"soul: error: {word}\n".encode())
    os._exit(code)
