"""Poll a task until every job is terminal, within an overall time limit.

When to poll. With nothing known, on a fixed grid from the start of the wait. With
the finish times of the user's recent similar tasks (from the ledger), first where
they were seen finished, a quarter second after that, and every half second back to
where they were still running; sparsely before that and on the grid after (a window
too wide for the poll budget: the grid throughout). Either way a task of T seconds
gets at most T/2 + 3 polls, and a 429 from the API ends the dense polling (the
client waits out its Retry-After).
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
# After the window's end, where the recent tasks were seen finished: a task a little
# slower than they were is seen this soon, not half a second later.
SLOWER_TASK_POLL = 0.25
# How far the window reaches beyond the recent finish times, on either side.
WINDOW_MARGIN = 0.5
# A window wider than this says little about when a task ends, and one ending later
# than this is no image task's: both are polled on the grid (grid units, like the
# plan, which they keep to a few hundred polls however odd the ledger's history).
WIDEST_WINDOW = 60.0
LATEST_WINDOW = 3600.0
# The poll budget: t seconds into a wait at most 2 + t/2 polls have been sent, so a task
# of T seconds is seen by poll T/2 + 3 at the latest. The grid spends exactly this much;
# a window's polls are paid for by fewer polls before it.
BUDGET_AT_START = 2.0
BUDGET_PER_SECOND = 0.5


@dataclass(frozen=True)
class FinishWindow:
    """Where recent similar tasks ended, in seconds after their submit was answered:
    from when they were still running to when they were seen finished."""

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

    Times are seconds since the wait began (`begin`). A task just submitted
    (`just_submitted`) counts its time from the submit's answer, with which the wait
    begins. The server made the task before it answered, so that time never runs ahead
    of the task's own (the poll bound holds as the server counts), and a batch's tasks
    are timed alike however long each submit took. A task taken up later counts from
    `submitted_at`, when its row was made (wall clock), a moment before its submit was
    sent: ahead of the task's own by as long as the submit took, so its ends are not
    recorded for later windows. SOUL_POLL_SCALE stretches or shrinks every interval
    (tests make them short).
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
        self.since_submit = 0.0  # seconds from the submit's answer to the start of the wait
        self.polls = 0
        self.pushed_back = False  # the API answered 429: no more dense polling
        self._running_at: float | None = 0.0 if just_submitted else None
        self._finished_at: float | None = None
        # A resumed task is looked at once as the wait begins, before any planned poll.
        self._unplanned = 0 if just_submitted else 1
        # The plan, in grid units (seconds / scale) since the wait began.
        self._submitted = 0.0  # the submit's answer, in grid units before the wait
        self._dense: list[float] = []  # the window's polls
        self._sparse: list[float] = []  # the polls before it

    def begin(self, now: float | None = None) -> None:
        """The wait begins now (wall clock): place the window on it."""
        if self.submitted_at is not None and not self.just_submitted:
            now = time.time() if now is None else now
            self.since_submit = max(0.0, now - self.submitted_at)
            self._submitted = self.since_submit / self.scale
        if self.window is not None:
            self._plan(self.window)

    def _plan(self, window: FinishWindow) -> None:
        aim = (window.latest - self.since_submit) / self.scale
        start = (window.earliest - self.since_submit) / self.scale - WINDOW_MARGIN
        if aim + WINDOW_MARGIN <= 0:
            return  # the window is over (a task resumed late): the grid it is
        if (window.latest - window.earliest) / self.scale > WIDEST_WINDOW:
            return
        if window.latest / self.scale > LATEST_WINDOW:
            return
        # First the window's end, where the recent tasks were seen finished: a task that
        # takes as long is seen at once, by a poll there rather than up to half a second
        # after it. Then a quarter second later, for a task a little slower. Then every
        # half second back towards the window's start and its margin, for a task a
        # little faster, as far as the budget affords. A window the budget leaves
        # unpolled for longer than the grid's own step is polled on the grid instead.
        ends = [p for p in (aim, aim + SLOWER_TASK_POLL) if p > 0]
        while ends and not self._affordable(ends):
            ends.pop()  # a task taken up at once: its first look spent a poll
        widest = math.floor((aim - start) / DENSE_POLL_EVERY + 1e-9)
        count = _largest(widest, lambda n: self._affordable(_every_half_second(aim, n) + ends))
        back = _every_half_second(aim, count)
        if (back[0] if back else aim) - (start + WINDOW_MARGIN) > SLOW_POLL_EVERY:
            return
        self._dense = back + ends
        for k in range(1, math.floor(WINDOW_MARGIN / DENSE_POLL_EVERY + 1e-9) + 1):
            if self._affordable([*self._dense, aim + k * DENSE_POLL_EVERY]):
                self._dense.append(aim + k * DENSE_POLL_EVERY)  # the margin after it
        if not self._dense:
            return
        # As many polls before the window as the budget leaves, spread evenly and about
        # as far apart as the grid's slow polls: a task that ends early after all is
        # still seen before long. (The margin after the window comes first: a task a
        # little slower than the last ones is far likelier than one far quicker.)
        first = self._dense[0]
        before = _largest(
            math.floor(first / SLOW_POLL_EVERY + 1e-9),
            lambda n: self._affordable(_evenly_before(first, n) + self._dense),
        )
        self._sparse = _evenly_before(first, before)

    def _affordable(self, polls: list[float]) -> bool:
        """Whether polls at these times (grid units since the wait began) keep within the
        budget: the n-th of them, in time order, no earlier than the budget allows n.
        A resumed task's first poll, sent at once, is counted before them."""
        ordered = sorted(polls)
        return all(
            n + self._unplanned <= self._budget(at) + 1e-9 for n, at in enumerate(ordered, 1)
        )

    def next_poll(self, elapsed: float) -> float:
        """When to send the next poll, in seconds since the wait began (after `elapsed`)."""
        now = elapsed / self.scale + 1e-6
        upcoming = [p for p in self._dense if p > now]
        if self.pushed_back or not upcoming:
            at = _on_grid(now)  # no window, or past it: the grid as it always was
        else:
            at = upcoming[0]
            early = [p for p in self._sparse if p > now]
            if early and self.polls - self._unplanned < len(self._sparse):
                at = min(at, early[0])
        # Within the budget whatever happened: late polls, a window too wide to afford,
        # a resumed task's first poll at once.
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
        """Seconds after the submit's answer: the task was still running after the first
        and had finished by the second; None if the polls did not see both, or if the
        task was taken up later: its time counts from its row, made before the submit,
        and such records would place the next windows late by as long as a submit took."""
        if not self.just_submitted or self._running_at is None or self._finished_at is None:
            return None
        return self._running_at, self._finished_at  # the wait began with the answer


def _every_half_second(end: float, count: int) -> list[float]:
    """`count` polls half a second apart before `end`: only those after the wait began."""
    return [p for p in (end - k * DENSE_POLL_EVERY for k in range(count, 0, -1)) if p > 0]


def _evenly_before(first: float, count: int) -> list[float]:
    """`count` polls spread evenly between the start of the wait and `first`."""
    return [first * i / (count + 1) for i in range(1, count + 1)]


def _largest(most: int, fits: Callable[[int], bool]) -> int:
    """The largest count from 0 to `most` that fits, for a test that a smaller count
    passes whenever a larger one does (fewer polls, no earlier, never cost more)."""
    low, high = 0, max(0, most)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


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
