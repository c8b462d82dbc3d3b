"""Whole files or none: write beside the target, flush to disk, then rename over it."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(target: Path, data: bytes, *, part: Path | None = None) -> None:
    """Write `data` to `target` through a temporary file beside it (`part`, by default
    `.NAME.PID.part`), so a reader or a kill never meets half a file."""
    part = part or target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with open(part, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
