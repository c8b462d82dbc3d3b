"""The `soul` command's first code: Ctrl-C is one line and exit 130 even while soul loads."""

from __future__ import annotations

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

    run()


def _stop_while_loading(signum: int, frame: FrameType | None) -> None:
    # Nothing has been sent or written yet, so stopping at once loses nothing.
    word, code = ("interrupted", 130) if signum == signal.SIGINT else ("terminated", 143)
    os.write(2, f"soul: error: {word}\n".encode())
    os._exit(code)
