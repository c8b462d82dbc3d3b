"""Poll a task until every job is terminal, within an overall time limit."""

from __future__ import annotations

import time
from collections.abc import Callable

from soulcli.client import ApiClient, RetryableError
from soulcli.config import env_float
from soulcli.errors import ExitCode, TaskStoppedError
from soulcli.models import TaskSnapshot

DEFAULT_WAIT_TIMEOUT = 900.0  # seconds; images normally take under a minute


# Poll at fixed offsets from the submit: every second for the first 4 s (short tasks
# are caught at once), then every 2 s. A grid, not a sleep after each poll, so the
# time each poll takes does not push later polls past the moment a task finishes.
FAST_POLLS_UNTIL = 4.0
SLOW_POLL_EVERY = 2.0


def poll_interval(elapsed: float) -> float:
    """Seconds from `elapsed` to the next poll on the grid (SOUL_POLL_SCALE scales it)."""
    import math

    scale = env_float("SOUL_POLL_SCALE", 1.0, low=0.01, high=10.0)
    at = elapsed / scale + 1e-6
    if at < FAST_POLLS_UNTIL:
        step = math.floor(at) + 1.0
    else:
        step = FAST_POLLS_UNTIL + SLOW_POLL_EVERY * (
            math.floor((at - FAST_POLLS_UNTIL) / SLOW_POLL_EVERY) + 1
        )
    return step * scale - elapsed


def wait_for_task(
    client: ApiClient,
    task_id: str,
    *,
    timeout: float,
    on_update: Callable[[TaskSnapshot], None] | None = None,
    on_retry: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    just_submitted: bool = False,
) -> TaskSnapshot:
    """Return the task's first finished snapshot, or raise TaskStoppedError at the deadline."""
    started = time.monotonic()
    deadline = started + timeout
    if just_submitted:
        # A task created a moment ago is still queued: the first poll waits for the grid.
        sleep(poll_interval(0.0))
    previous: tuple[str, ...] | None = None
    while True:
        try:
            snapshot = client.fetch(task_id, deadline=deadline, on_retry=on_retry)
        except RetryableError as exc:
            raise _timed_out(task_id, timeout, exc.message) from exc
        if on_update is not None:
            on_update(snapshot)
        # The job statuses, not the URLs, which a CDN may sign anew on every answer.
        statuses = tuple(job.status for job in snapshot.jobs)
        if snapshot.finished and (snapshot.says_it_is_over or statuses == previous):
            return snapshot
        previous = statuses
        now = time.monotonic()
        if now >= deadline:
            raise _timed_out(task_id, timeout, f"the task was still {snapshot.phase}")
        # The last poll lands on the deadline itself, so a task finishing then is not missed.
        sleep(min(poll_interval(now - started), deadline - now))


def _timed_out(task_id: str, timeout: float, last_state: str) -> TaskStoppedError:
    return TaskStoppedError(
        f"gave up waiting for task {task_id} after {timeout:g}s: {last_state}; "
        "the task keeps running on the server",
        task_id=task_id,
        exit_code=ExitCode.TIMEOUT,
    )
