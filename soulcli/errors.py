"""Exit codes and the error types that the CLI turns into one-line messages."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class ExitCode(enum.IntEnum):
    """Process exit codes; documented in the README and tested in test_exit_codes."""

    OK = 0
    INTERNAL = 1  # an unexpected error: a bug in soul
    USAGE = 2  # bad command-line input; nothing was sent
    CONFIG = 3  # missing API key or an unusable config file
    AUTH = 4  # the API refused the key (401)
    BALANCE = 5  # the account is out of credit (402/403)
    REJECTED = 6  # the API rejected the request (400/422)
    NOT_FOUND = 7  # no such task (404)
    UNREACHABLE = 8  # the API could not be reached; nothing was charged
    SERVER = 9  # the API failed or answered nonsense
    MAYBE_CHARGED = 10  # the submit may have reached the server but no task id came back
    TIMEOUT = 11  # gave up waiting; the task goes on and can be resumed
    PARTIAL = 12  # the task finished but some images were not delivered
    TASK_FAILED = 13  # the task finished with no image delivered
    DOWNLOAD = 14  # an image could not be downloaded or saved
    DECLINED = 15  # the price needed a confirmation that was not given; nothing was sent
    BATCH_INCOMPLETE = 16  # a batch finished but some lines did not complete
    UNRECORDED = 17  # a task was submitted (charged) but the ledger could not record it
    INTERRUPTED = 130  # Ctrl-C
    TERMINATED = 143  # SIGTERM


class SoulError(Exception):
    """An error with a message meant for the user and the exit code it maps to."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(
        self, message: str, *, hint: str | None = None, exit_code: ExitCode | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(SoulError):
    exit_code = ExitCode.USAGE


class ConfigError(SoulError):
    exit_code = ExitCode.CONFIG


class AuthError(SoulError):
    exit_code = ExitCode.AUTH


class BalanceError(SoulError):
    exit_code = ExitCode.BALANCE


class RejectedError(SoulError):
    exit_code = ExitCode.REJECTED


class TaskNotFoundError(SoulError):
    exit_code = ExitCode.NOT_FOUND


class UnreachableError(SoulError):
    exit_code = ExitCode.UNREACHABLE


class ServerError(SoulError):
    exit_code = ExitCode.SERVER


class DownloadError(SoulError):
    exit_code = ExitCode.DOWNLOAD


class MaybeChargedError(SoulError):
    """The submit may have reached the server; a task id may or may not exist."""

    exit_code = ExitCode.MAYBE_CHARGED

    def __init__(self, message: str, *, task_id: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.task_id = task_id


class TaskUnrecordedError(SoulError):
    """The server took the request and gave a task id, but the ledger cannot be written."""

    exit_code = ExitCode.UNRECORDED

    def __init__(self, message: str, *, task_id: str, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.task_id = task_id


class SubmitStoppedError(SoulError):
    """Ctrl-C or SIGTERM while no request was on the wire (a retry's back-off): not charged."""


def resume_command(task_id: str, out_dir: Path | str | None) -> str:
    """The command that waits for a task and saves its images where they were going."""
    import shlex

    command = f"soul fetch {shlex.quote(task_id)} --wait"
    if out_dir is not None:
        command += f" --out {shlex.quote(str(out_dir))}"
    return command


class TaskStoppedError(SoulError):
    """Waiting stopped before the task finished; the task id lets the user resume."""

    def __init__(self, message: str, *, task_id: str, exit_code: ExitCode) -> None:
        super().__init__(message, hint=f"resume with: soul fetch {task_id} --wait")
        self.task_id = task_id
        self.exit_code = exit_code

    @classmethod
    def by_signal(
        cls, task_id: str, out_dir: Path | str | None, stop: BaseException, *, doing: str
    ) -> TaskStoppedError:
        """The error for Ctrl-C or SIGTERM once a task exists: its id and the resume command."""
        error = cls(
            f"{stop_word(stop)} while {doing} task {task_id}; it keeps running on the server",
            task_id=task_id,
            exit_code=stop_exit_code(stop),
        )
        error.hint = f"resume with `soul fetch`, or `{resume_command(task_id, out_dir)}`"
        return error


class Stopped(BaseException):
    """Ctrl-C or SIGTERM, raised in the main thread by soul's own signal handlers.

    Not a KeyboardInterrupt: Typer turns that into a silent exit before soul's error
    boundary sees it.
    """

    exit_code = ExitCode.INTERRUPTED
    word = "interrupted"


class Interrupted(Stopped):
    """Ctrl-C (SIGINT)."""


class Terminated(Stopped):
    """SIGTERM, handled like Ctrl-C."""

    exit_code = ExitCode.TERMINATED
    word = "terminated"


# What a stop looks like: soul's own, or Python's KeyboardInterrupt where soul's
# handlers are not installed (the library, a worker told to stop).
STOPS = (KeyboardInterrupt, Stopped)


def stop_exit_code(stop: BaseException) -> ExitCode:
    return stop.exit_code if isinstance(stop, Stopped) else ExitCode.INTERRUPTED


def stop_word(stop: BaseException) -> str:
    return stop.word if isinstance(stop, Stopped) else "interrupted"
