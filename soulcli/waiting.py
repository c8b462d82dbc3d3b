"""Poll a task until every job is terminal, within an overall time limit.

When to poll. With nothing known, on a fixed grid from the start of the wait. With
the finish times of the user's recent similar tasks (from the ledger), every half
second in the window where this task is likely to end, sparsely before it and on
the grid after it. Either way a task of T seconds gets at most T/2 + 3 polls, and a
429 from the API ends the dense polling (the client waits out its Retry-After).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from soulcli.config import env_float
from soulcli.errors import ExitCode, TaskStoppedError

if TYPE_CHECKING:
    from soulcli.client import ApiClient
    from soulcli.models import TaskSnapshot

DEFAULT_WAIT_TIMEOUT = 900.0  # seconds; images normally take under a minute

# The grid: every second for the first 4 s (short tasks are caught at once), then every
# 2 s. Fixed offsets from the start, not a sleep after each poll, so the time each poll
# takes does not push later polls past the moment a task finishes.
FAST_POLLS_UNTIL = 4.0
SLOW_POLL_EVERY = 2.0
# Inside the window: a task that ends there is seen within half a second.
DENSE_POLL_EVERY = 0.5
# How far the window reaches beyond the recent finish times, on either side.
WINDOW_MARGIN = 0.5
# The poll budget: t seconds into a wait at most 2 + t/2 polls have been sent, so a task
# of T seconds is seen by poll T/2 + 3 at the latest. The grid spends exactly this much;
# a window's polls are paid for by fewer polls before it.
BUDGET_AT_START = 2.0
BUDGET_PER_SECOND = 0.5


@dataclass(frozen=True)
class FinishWindow:
    """Where recent similar tasks ended, in seconds after their submit: from the
    earliest time one was still running to the latest time one was seen finished."""

    earliest: float
    latest: float

    @classmethod
    def spanning(cls, finishes: Sequence[tuple[float, float]]) -> FinishWindow | None:
        """The window for tasks that each ended after `after` and by `by`; None for none.

        Tasks that take the same time pin it down: their intervals all overlap around
        it, and the window is that overlap. Tasks whose intervals do not all overlap
        vary, and the window runs from the typical one's last "still running" to its
        first "finished" (the medians). Spanning every interval instead fed on itself:
        a wide window is polled sparsely, which records wide intervals, which widen the
        next window (in a batch, 2 s tasks came to be seen 1.5 s late).
        """
        if not finishes:
            return None
        afters = [after for after, _ in finishes]
        bys = [by for _, by in finishes]
        if max(afters) < min(bys):
            return cls(max(afters), min(bys))
        # Never empty: each `by` is later than its `after`, so each order statistic of
        # the `by`s is later than the same one of the `after`s.
        return cls(_median(afters), _median(bys))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


class PollSchedule:
    """When to poll one task, and what the polls saw of its end.

    Times are seconds since the wait began (`begin`); the window, in seconds after a
    submit, is placed on them by `submitted_at`, the task's own submit (wall clock).
    `just_submitted`: the task was running when the wait began (its submit has just
    been answered). SOUL_POLL_SCALE stretches or shrinks every interval (tests make
    them short).
    """

    def __init__(
        self,
        window: FinishWindow | None = None,
        *,
        submitted_at: float | None = None,
        just_submitted: bool = False,
    ) -> None:
        self.scale = env_float("SOUL_POLL_SCALE", 1.0, low=0.01, high=10.0)
        self.window = window
        self.submitted_at = submitted_at
        self.just_submitted = just_submitted
        self.since_submit = 0.0  # seconds from the submit to the start of the wait
        self.polls = 0
        self.pushed_back = False  # the API answered 429: no more dense polling
        self._running_at: float | None = 0.0 if just_submitted else None
        self._finished_at: float | None = None
        # The plan, in grid units (seconds / scale) since the wait began.
        self._submitted = 0.0  # the submit, in grid units before the wait
        self._dense: list[float] = []  # the window's polls
        self._sparse: list[float] = []  # the polls before it

    def begin(self, now: float | None = None) -> None:
        """The wait begins now (wall clock): place the window on it."""
        if self.submitted_at is not None:
            now = time.time() if now is None else now
            self.since_submit = max(0.0, now - self.submitted_at)
            self._submitted = self.since_submit / self.scale
        if self.window is not None:
            self._plan(self.window)

    def _plan(self, window: FinishWindow) -> None:
        start = (window.earliest - self.since_submit) / self.scale - WINDOW_MARGIN
        end = (window.latest - self.since_submit) / self.scale + WINDOW_MARGIN
        if end <= 0:
            return  # the window is over (a task resumed late): the grid it is
        # Every half second across the window if the budget affords it (2 + end/2 polls
        # by its end), else evenly as many polls as it does: short tasks, wide windows.
        wanted = math.floor((end - start) / DENSE_POLL_EVERY + 1e-9) + 1
        count = min(wanted, math.floor(self._budget(end) + 1e-9))
        step = DENSE_POLL_EVERY if count == wanted else (end - start) / (count - 1)
        self._dense = [p for p in (start + i * step for i in range(count)) if p > 0]
        if not self._dense:
            return
        # As many polls before the window as leave the budget whole for the window's own:
        # the last of those, poll `spare + len(dense)`, must fit in the budget at its time.
        spare = self._budget(self._dense[-1]) - len(self._dense)
        # Spread evenly, and never closer than the grid's slow polls: a task that ends
        # early after all is still seen before long.
        before = max(0, min(math.floor(spare + 1e-9), math.floor(start / SLOW_POLL_EVERY)))
        self._sparse = [start * i / (before + 1) for i in range(1, before + 1)]

    def next_poll(self, elapsed: float) -> float:
        """When to send the next poll, in seconds since the wait began (after `elapsed`)."""
        now = elapsed / self.scale + 1e-6
        if not self._dense:
            return _on_grid(now) * self.scale  # no window: the grid as it always was
        upcoming = [p for p in self._dense if p > now]
        if self.pushed_back or not upcoming:
            at = _on_grid(now)
        else:
            at = upcoming[0]
            early = [p for p in self._sparse if p > now]
            if early and self.polls < len(self._sparse):
                at = min(at, early[0])
        # Within the budget whatever happened: late polls, a window too wide to afford.
        at = max(at, (self.polls + 1 - BUDGET_AT_START) / BUDGET_PER_SECOND - self._submitted)
        return at * self.scale

    def _budget(self, at: float) -> float:
        """How many polls the budget allows by `at` (grid units since the wait began): it
        counts from the submit, so a task resumed later may be polled densely at once."""
        return BUDGET_AT_START + BUDGET_PER_SECOND * (at + self._submitted)

    def polled(self, sent: float, answered: float, finished: bool) -> None:
        """A poll sent at `sent` was answered at `answered` (seconds since the wait began)."""
        self.polls += 1
        if not finished:
            self._running_at = sent
        elif self._finished_at is None:
            self._finished_at = answered

    def finish_seen(self) -> tuple[float, float] | None:
        """Seconds after the submit: the task was still running after the first and had
        finished by the second; None if the polls did not see both."""
        if self._running_at is None or self._finished_at is None:
            return None
        return self.since_submit + self._running_at, self.since_submit + self._finished_at


def _on_grid(at: float) -> float:
    """The first point of the fixed grid after `at` (grid units)."""
    if at < FAST_POLLS_UNTIL:
        return math.floor(at) + 1.0
    slow = math.floor((at - FAST_POLLS_UNTIL) / SLOW_POLL_EVERY) + 1
    return FAST_POLLS_UNTIL + SLOW_POLL_EVERY * slow


def wait_for_task(
    client: ApiClient,
    task_id: str,
    *,
    timeout: float,
    on_update: Callable[[TaskSnapshot], None] | None = None,
    on_retry: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    schedule: PollSchedule | None = None,
    idle: Callable[[], None] | None = None,
) -> TaskSnapshot:
    """Return the task's first finished snapshot, or raise TaskStoppedError at the deadline.

    `idle` is work for the time before a poll is due (done once, before the first sleep),
    so that it neither delays the polls nor waits until the task is over.
    """
    from soulcli.client import RetryableError

    schedule = schedule or PollSchedule()
    started = time.monotonic()
    deadline = started + timeout
    schedule.begin()
    chores = [idle] if idle is not None else []

    def pause_until(at: float) -> None:
        while chores:
            chores.pop()()
        sleep(max(0.0, min(at, timeout) - (time.monotonic() - started)))

    if schedule.just_submitted:
        # A task created a moment ago is still queued: the first poll waits for the plan.
        pause_until(schedule.next_poll(0.0))
    previous: tuple[str, ...] | None = None
    rate_limits = client.rate_limits_seen
    while True:
        sent = time.monotonic() - started
        try:
            snapshot = client.fetch(task_id, deadline=deadline, on_retry=on_retry)
        except RetryableError as exc:
            raise _timed_out(task_id, timeout, exc.message) from exc
        now = time.monotonic()
        schedule.polled(sent, now - started, snapshot.finished)
        if client.rate_limits_seen != rate_limits:
            schedule.pushed_back = True
        if on_update is not None:
            on_update(snapshot)
        # The job statuses, not the URLs, which a CDN may sign anew on every answer.
        statuses = tuple(job.status for job in snapshot.jobs)
        if snapshot.finished and (snapshot.says_it_is_over or statuses == previous):
            return snapshot
        previous = statuses
        if now >= deadline:
            raise _timed_out(task_id, timeout, f"the task was still {snapshot.phase}")
        # The last poll lands on the deadline itself, so a task finishing then is not missed.
        pause_until(schedule.next_poll(now - started))


def _timed_out(task_id: str, timeout: float, last_state: str) -> TaskStoppedError:
    return TaskStoppedError(
        f"gave up waiting for task {task_id} after {timeout:g}s: {last_state}; "
        "the task keeps running on the server",
        task_id=task_id,
        exit_code=ExitCode.TIMEOUT,
    )
