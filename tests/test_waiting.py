"""When soul polls: the fixed grid without history, dense around the end the ledger expects.

The schedule is driven here by a simulated clock (polls sent when it says, or late);
tests/test_wait_window.py checks the same through the real CLI against the fake.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from soulcli.waiting import FinishWindow, PollSchedule

SUBMIT = 1000.0  # the wall-clock time of the simulated submit


def run_schedule(
    schedule: PollSchedule,
    ends_at: float,
    *,
    since_submit: float = 0.0,
    late: list[float] | None = None,
) -> list[float]:
    """The poll times (seconds since the wait began) until a task that ends `ends_at`
    seconds after the schedule's start of time is seen: the submit's answer, which
    begins the wait of a task just submitted, or for a task taken up later its record,
    made `since_submit` seconds before the wait began. `late` delays each poll by that
    much, in turn."""
    schedule.begin(now=SUBMIT + since_submit)
    delays = iter(late or [])
    at = schedule.next_poll(0.0) if schedule.just_submitted else 0.0
    polls: list[float] = []
    while True:
        at += next(delays, 0.0)
        polls.append(at)
        finished = schedule.since_submit + at >= ends_at
        schedule.polled(at, at, finished)
        if finished or len(polls) > 500:
            return polls
        at = schedule.next_poll(at)


def submitted(window: FinishWindow | None) -> PollSchedule:
    """A schedule for a task whose submit has just been answered."""
    return PollSchedule(window, submitted_at=SUBMIT, just_submitted=True)


def resumed(window: FinishWindow | None) -> PollSchedule:
    """A schedule for a task taken up again (`soul fetch`): looked at once at once."""
    return PollSchedule(window, submitted_at=SUBMIT)


@pytest.fixture(autouse=True)
def unscaled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOUL_POLL_SCALE", raising=False)


def test_without_history_the_grid_is_as_it_always_was() -> None:
    polls = run_schedule(submitted(None), 20.5)
    assert polls == pytest.approx([1, 2, 3, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22])
    # A resumed task (not just submitted) is looked at once at once, then the same grid.
    assert run_schedule(resumed(None), 104.5, since_submit=100.0) == pytest.approx(
        [0, 1, 2, 3, 4, 6]
    )
    # Taken up right after its submit, that first look costs one of the grid's polls.
    assert len(run_schedule(resumed(None), 32.03)) <= 32.03 / 2 + 3


def test_the_scale_shrinks_the_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUL_POLL_SCALE", "0.2")
    assert run_schedule(submitted(None), 1.3) == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.2, 1.6])


def test_polls_gather_where_recent_tasks_ended() -> None:
    # Three earlier tasks: one seen on the grid (running at 20 s, done by 22 s), two
    # seen by dense polls. They took different times (their intervals do not all
    # overlap), so the window runs from the median "running" to the median "done":
    # 19.5 s to 21.5 s, with half a second's margin.
    window = FinishWindow.spanning([(20.0, 22.0), (20.0, 20.5), (20.5, 21.0)])
    assert window == FinishWindow(20.0, 21.0)
    polls = run_schedule(submitted(window), 20.7)
    inside = [p for p in polls if p >= 19.5]
    assert inside == pytest.approx([19.5, 20.0, 20.5, 21.0])  # seen 0.3 s after the end
    before = [0.0] + [p for p in polls if p < 19.5]
    gaps = [later - earlier for earlier, later in itertools.pairwise(before)]
    assert len(gaps) >= 3 and min(gaps) >= 2.0  # sparse before it
    assert len(polls) <= 20.7 / 2 + 3  # 10 polls, where the grid took 13


def test_tasks_that_take_the_same_time_narrow_the_window_to_where_they_overlap() -> None:
    # Each interval holds its task's end: 2 s tasks seen on the grid and densely.
    assert FinishWindow.spanning([(1.0, 2.0), (1.5, 2.5), (1.75, 3.0)]) == FinishWindow(1.75, 2.0)
    # Intervals that do not all overlap are tasks that vary: the typical one's
    # interval, from the median "running" to the median "done".
    varied = [(20.0, 20.5), (20.5, 21.0), (20.25, 20.75), (19.0, 21.0)]
    assert FinishWindow.spanning(varied) == FinishWindow(20.125, 20.875)
    assert FinishWindow.spanning([(1.0, 2.0), (5.0, 6.0)]) == FinishWindow(3.0, 4.0)


def chain_of_tasks(lasting: list[float]) -> tuple[list[float], list[int]]:
    """Tasks one after another, each wait's record feeding the next one's window as in
    a batch: how late each task was seen, and how many polls each took."""
    recorded: list[tuple[float, float]] = []
    late_by: list[float] = []
    poll_counts: list[int] = []
    for task in lasting:
        schedule = submitted(FinishWindow.spanning(recorded[-5:]))
        polls = run_schedule(schedule, task)
        late_by.append(polls[-1] - task)
        poll_counts.append(len(polls))
        assert len(polls) <= task / 2 + 3
        seen = schedule.finish_seen()
        assert seen is not None
        recorded.append(seen)
    return late_by, poll_counts


def test_a_run_of_equal_short_tasks_is_seen_at_once_task_after_task() -> None:
    """2 s tasks as the fake runs them: the first on the grid, then each is seen at the
    poll where the ones before it were seen finished. The windows must not widen."""
    late_by, poll_counts = chain_of_tasks([1.995] * 12)
    assert max(late_by) <= 0.01, late_by
    assert poll_counts[1:] == [2] * 11  # as few as the grid's
    late_by, _ = chain_of_tasks([3.5] * 12)
    assert max(late_by[1:]) <= 0.01, late_by


def test_tasks_a_little_slower_than_the_last_ones_are_seen_soon() -> None:
    # Each a few hundredths slower than the one before: the poll a quarter second
    # after the window catches the first one past it, and the window moves with them.
    late_by, _ = chain_of_tasks([2.0 + 0.03 * i for i in range(12)])
    assert max(late_by[1:]) <= 0.26, late_by
    assert sum(late_by[1:]) / 11 <= 0.15, late_by


def test_how_long_a_submit_took_does_not_move_the_polls() -> None:
    # Time counts from the answer: a submit that took 0.4 s (a busy batch, a slow
    # network) is polled as one answered at once.
    window = FinishWindow(1.5, 2.0)
    quick = run_schedule(submitted(window), 1.9, since_submit=0.0)
    slow = run_schedule(submitted(window), 1.9, since_submit=0.4)
    assert quick == slow == pytest.approx([1.5, 2.0])


def test_a_task_outside_the_window_is_still_seen() -> None:
    window = FinishWindow(20.0, 22.0)
    early = run_schedule(submitted(window), 9.0)
    assert early[-1] - 9.0 < 3.0  # the sparse polls before the window catch it
    late = run_schedule(submitted(window), 31.0)
    assert late[-2:] == pytest.approx([30.0, 32.0])  # after the window: the grid
    assert len(late) <= 31.0 / 2 + 3


def test_short_tasks_poll_as_densely_as_the_budget_allows() -> None:
    # A window of 3 to 4 s: the budget (2 + t/2 polls by t) affords 4 polls by 4.25 s:
    # its end, a quarter second later, and two more half a second apart back from it.
    # The grid's 1 and 2 s polls, far from the window, are the ones left out.
    window = FinishWindow(3.0, 4.0)
    assert run_schedule(submitted(window), 3.5) == pytest.approx([3.0, 3.5])
    assert run_schedule(submitted(window), 4.1) == pytest.approx([3.0, 3.5, 4.0, 4.25])
    assert run_schedule(submitted(window), 2.2) == pytest.approx([3.0])  # early: seen late


def test_a_window_too_wide_for_the_budget_is_polled_on_the_grid() -> None:
    # Tasks that took 10 to 30 s: the budget cannot afford a poll every half second
    # over 20 s. Packed at the window's end, the polls would leave a task that ends
    # early unseen for 12 s; the grid sees any within 2 s.
    for window in (FinishWindow(10.0, 30.0), FinishWindow(40.0, 100.0)):
        for task in (5.0, 10.0, 29.0):
            assert run_schedule(submitted(window), task) == run_schedule(submitted(None), task)


def test_the_margin_after_the_window_is_polled_too() -> None:
    # Half a second after the window's end, if the budget affords it: a task 0.4 s
    # slower than the last ones is seen at 5.6 s, not on the grid's 6 s.
    polls = run_schedule(submitted(FinishWindow(4.9, 5.1)), 5.5)
    assert polls == pytest.approx([4.6, 5.1, 5.35, 5.6])


def test_a_resumed_tasks_first_look_is_paid_for_by_the_plan() -> None:
    # Taken up 0.1 s after its row was made: the poll at once is one of the budget's,
    # so the plan has one poll fewer before the window's end (none at 2.9 s).
    polls = run_schedule(resumed(FinishWindow(3.0, 4.0)), 3.05, since_submit=0.1)
    assert polls == pytest.approx([0.0, 3.4])


def test_odd_histories_are_polled_on_the_grid() -> None:
    grid = run_schedule(submitted(None), 7.0)
    # Tasks that took anything from 0 to 15 minutes say nothing of when this one ends;
    # one that took a month is no image task. Neither is planned poll by poll.
    for window in (FinishWindow(0.0, 900.0), FinishWindow(2_592_000.0, 2_592_005.0)):
        assert run_schedule(submitted(window), 7.0) == grid


def test_a_rate_limit_ends_the_dense_polling() -> None:
    schedule = submitted(FinishWindow(20.0, 22.0))
    schedule.begin(now=SUBMIT)
    assert schedule.next_poll(19.6) == pytest.approx(20.0)
    schedule.pushed_back = True  # a 429 was answered
    assert schedule.next_poll(19.6) == pytest.approx(20.0)  # the grid's own next point
    assert schedule.next_poll(20.1) == pytest.approx(22.0)


def test_a_resumed_task_polls_densely_at_once_inside_its_window() -> None:
    # `soul fetch` 19 s after the submit of a task expected to end between 20 and 22 s.
    window = FinishWindow(20.0, 22.0)
    polls = run_schedule(resumed(window), 21.3, since_submit=19.0)
    assert polls == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    # Resumed long after the window: the grid from the start of the wait.
    late = run_schedule(resumed(window), 303.5, since_submit=300.0)
    assert late == pytest.approx([0, 1, 2, 3, 4])


def test_the_polls_bracket_the_end() -> None:
    schedule = submitted(FinishWindow(20.0, 22.0))
    run_schedule(schedule, 20.8)
    seen = schedule.finish_seen()
    assert seen is not None
    after, by = seen
    assert after < 20.8 <= by and by - after == pytest.approx(0.5)
    # Without a poll that found it running, nothing is known of when it ended.
    taken_up = resumed(None)
    run_schedule(taken_up, 50.0, since_submit=60.0)
    assert taken_up.finish_seen() is None
    # A task taken up later counts from its row, made before its submit was sent: its
    # end is not recorded, or it would place the next windows late by the submit's time.
    taken_up = resumed(FinishWindow(20.0, 22.0))
    run_schedule(taken_up, 20.8, since_submit=10.0)
    assert taken_up.finish_seen() is None


finishes = st.lists(
    st.tuples(st.floats(0.0, 120.0), st.floats(0.01, 10.0)).map(lambda p: (p[0], p[0] + p[1])),
    min_size=1,
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(ends=finishes)
def test_the_window_is_never_empty(ends: list[tuple[float, float]]) -> None:
    window = FinishWindow.spanning(ends)
    assert window is not None and window.earliest < window.latest


@settings(max_examples=300, deadline=None)
@example(ends=[(0.0, 1.0)], task=33.63, taken_up_after=1.6, late=[])  # the grid after it
@given(
    ends=finishes,
    task=st.floats(0.05, 200.0),
    taken_up_after=st.one_of(st.none(), st.floats(0.0, 200.0)),
    late=st.lists(st.floats(0.0, 1.5), max_size=60),
)
def test_never_more_polls_than_the_grid_bound(
    ends: list[tuple[float, float]], task: float, taken_up_after: float | None, late: list[float]
) -> None:
    """Whatever the history and however late the polls go out: at most T/2 + 3 polls
    for a task of T seconds, as with the grid, just submitted or taken up later."""
    window = FinishWindow.spanning(ends)
    if taken_up_after is None:
        polls = run_schedule(submitted(window), task, late=late)
    else:
        assume(taken_up_after < task)
        polls = run_schedule(resumed(window), task, since_submit=taken_up_after, late=late)
    assert len(polls) <= task / 2 + 3


@settings(max_examples=300, deadline=None)
@given(
    earliest=st.floats(8.0, 120.0),
    spread=st.floats(0.0, 1.0),
    where=st.floats(0.0, 1.0),
)
def test_a_task_ending_in_its_window_is_seen_within_half_a_second(
    earliest: float, spread: float, where: float
) -> None:
    window = FinishWindow(earliest, earliest + spread)
    task = earliest + where * spread
    polls = run_schedule(submitted(window), task)
    assert polls[-1] - task <= 0.5 + 1e-6
