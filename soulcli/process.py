"""Facts about soul processes: who this one is, and whether one that holds a task still runs.

A process is named by its pid and, where the system tells it, its start time, so a
pid that the system handed to another program after a soul process died is not
mistaken for that soul process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Owner:
    """A soul process that holds a ledger row."""

    pid: int
    started: int | None  # clock ticks since boot (Linux), None where unknown

    @property
    def alive(self) -> bool:
        if not pid_alive(self.pid):
            return False
        return self.started is None or started_at(self.pid) in (None, self.started)

    @property
    def is_me(self) -> bool:
        return self == me()


@cache
def me() -> Owner:
    """This process."""
    pid = os.getpid()
    return Owner(pid, started_at(pid))


def started_at(pid: int) -> int | None:
    """When a process started, from /proc/PID/stat (field 22), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
        # The command name (field 2) may hold spaces and parentheses: count from its end.
        fields = text[text.rindex(")") + 2 :].split()
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists (a pid we may not signal still counts)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
