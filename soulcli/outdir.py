"""The output directory: refused if it is a file, created and checked before anything is paid for.

Apart from downloads.py, so that a command that only needs the directory (`generate
--no-wait`, `fetch` of images already on disk) does not import the image client.
"""

from __future__ import annotations

import os
from pathlib import Path

from soulcli.errors import DownloadError, UsageError


def refuse_a_file(out_dir: Path) -> None:
    """A usage error when the output directory is an existing file (creates nothing)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(
            f"output directory {out_dir} is a file, not a directory",
            hint="give --out a directory; soul names the 4 images itself",
        )


def prepare_out_dir(out_dir: Path) -> Path:
    """Create the output directory if needed and check that it can be written to."""
    out_dir = out_dir.expanduser()
    refuse_a_file(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create output directory {out_dir}: {exc.strerror}") from exc
    if not out_dir.is_dir():
        raise DownloadError(f"output path {out_dir} is not a directory")
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise DownloadError(f"output directory {out_dir} is not writable")
    return out_dir.resolve()


def prepare_before_sending(out_dir: Path) -> Path:
    """prepare_out_dir for a directory checked before any request goes out this run:
    its error says that nothing was sent (a bare "cannot create" after the price line
    reads as if the request had been paid for)."""
    try:
        return prepare_out_dir(out_dir)
    except DownloadError as exc:
        raise DownloadError(f"{exc.message}; nothing was sent", hint=exc.hint) from exc
