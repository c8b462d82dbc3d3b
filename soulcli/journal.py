"""A small append-only file beside the ledger for task ids the ledger could not take.

When the disk holding the ledger fills between a POST and recording its task id,
SQLite cannot write, but the id must survive. This file keeps space reserved for
that moment: it is created at its full size, zero-filled, and a record is written
into the zeros, which needs no new disk blocks. The next soul run that opens the
ledger folds the records back in and zeroes them again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FILENAME = "unrecorded-tasks.journal"
RESERVED_BYTES = 64 * 1024  # about 300 records; more than any one disk-full episode needs


def journal_path(ledger_file: Path) -> Path:
    return ledger_file.with_name(FILENAME)


def reserve(path: Path) -> None:
    """Create the journal at its reserved size, if it is not there yet."""
    try:
        if path.stat().st_size >= RESERVED_BYTES:
            return
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, RESERVED_BYTES)  # real blocks, not a sparse hole
        except (AttributeError, OSError):
            os.ftruncate(fd, RESERVED_BYTES)
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _locked(path: Path, *, create: bool) -> Iterator[int | None]:
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            import fcntl
        except ImportError:  # not on Unix: one soul process at a time is assumed
            pass
        else:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def _used(fd: int) -> bytes:
    """The records: everything before the first zero byte."""
    data = b""
    offset = 0
    while True:
        chunk = os.pread(fd, 8192, offset)
        if not chunk:
            return data
        end = chunk.find(b"\0")
        if end >= 0:
            return data + chunk[:end]
        data += chunk
        offset += len(chunk)


def append(path: Path, record: dict[str, Any]) -> None:
    """Write one record durably into the reserved space (or past it, if there is room)."""
    line = (json.dumps(record, ensure_ascii=True) + "\n").encode("ascii")
    with _locked(path, create=True) as fd:
        assert fd is not None
        used = _used(fd)
        if used and not used.endswith(b"\n"):
            line = b"\n" + line  # a record a crash cut short stays apart from this one
        written = os.pwrite(fd, line, len(used))
        if written != len(line):
            raise OSError(f"short write to {path}")
        os.fsync(fd)


def has_records(path: Path) -> bool:
    """Cheap check for the common case: the first byte of an empty journal is zero."""
    try:
        with path.open("rb") as handle:
            first = handle.read(1)
    except OSError:
        return False
    return first not in (b"", b"\0")


def take(path: Path, apply: Callable[[dict[str, Any]], bool]) -> None:
    """Hand each record to `apply` under the lock; keep only those it did not take.

    A record that matches nothing (the ledger was replaced, say) is kept, not dropped:
    it still holds a task id the user paid for.
    """
    with _locked(path, create=False) as fd:
        if fd is None:
            return
        used = _used(fd)
        kept = b""
        for line in used.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a record cut by a crash mid-write: nothing to apply
            if not isinstance(record, dict) or not apply(record):
                kept += line + b"\n"
        os.pwrite(fd, kept + b"\0" * (len(used) - len(kept)), 0)
        os.fsync(fd)
