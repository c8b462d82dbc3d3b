"""Polls placed by history, through the installed CLI against the fake: what the fake saw.

The fake records when each poll arrived. Sleeps only ever run late, so these tests
assert what lateness cannot break: no poll before some moment, at most so many polls
in a span, what the ledger recorded.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from soulcli.fake302 import Fake302
from soulcli.ledger import COMPLETED, Ledger
from soulcli.models import GenerationRequest
from soulcli.request_builder import build_request
from tests.conftest import run_soul, soul_env


def a_request(quality: str | None = None) -> GenerationRequest:
    return build_request(
        "a dog", style=None, ar=None, quality=quality, seed=None, negative=None, enhance=None
    )


def seed_history(data_dir: Path, api_host: str, ends: list[tuple[float, float]]) -> None:
    """Earlier finished tasks in the ledger, each seen to end after `after` and by `by`
    seconds from its submit."""
    with Ledger.open(data_dir / "tasks.db") as ledger:
        for number, (after, by) in enumerate(ends):
            local_id = ledger.add(a_request(), out_dir=None, api_host=api_host)
            ledger.set_remote_id(local_id, f"higgsfield_{number:012d}")
            ledger.set_results(local_id, COMPLETED, [])
            ledger.set_done_seen(local_id, after, by)


def done_seen(isolated_dirs: Path) -> list[tuple[float | None, float | None]]:
    with sqlite3.connect(isolated_dirs / "data" / "tasks.db") as db:
        return list(db.execute("SELECT done_after, done_by FROM tasks ORDER BY id"))


def polls_since_created(fake: Fake302) -> list[float]:
    """When the task's polls reached the fake, in seconds after it created the task."""
    (task,) = fake.state.tasks.values()
    return [r.at - task.created_wall for r in fake.requests("GET") if task.task_id in r.path]


def unscaled(fake: Fake302) -> dict[str, str]:
    env = soul_env(fake)
    del env["SOUL_POLL_SCALE"]
    return env


@pytest.fixture
def ends_at_4_25(fake: Fake302) -> Fake302:
    """Tasks that end 4.25 s after they are created."""
    fake.settings.queue_seconds, fake.settings.run_seconds = 1.0, 3.25
    return fake


def test_polls_gather_where_earlier_tasks_ended(
    ends_at_4_25: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    fake = ends_at_4_25
    # Three earlier tasks ended between 3.8 and 4.2 s, a little sooner than this one.
    seed_history(isolated_dirs / "data", fake.base_url, [(3.8, 4.2)] * 3)
    result = run_soul("generate", "a dog", "-o", str(out_dir), env=unscaled(fake))
    assert result.code == 0, result.stderr
    polls = polls_since_created(fake)
    # The grid would have polled at 1, 2, 3, 4 and 6 s. The budget goes to the window
    # instead: 3.7 s, 4.2 s where the others were seen finished, and 4.45 s, a quarter
    # second later, which sees this slower one.
    assert polls[0] > 3.2
    assert len(polls) <= 3  # 2 if the 4.2 s poll ran late enough to see it
    after, by = done_seen(isolated_dirs)[-1]
    assert after is not None and by is not None
    assert 3.7 <= after < 4.25 <= by


def test_a_rate_limit_ends_the_dense_polling(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    # Intervals halved; tasks of 5.125 s after three that ended between 4.9 and 5.1 s:
    # sparse polls at 1.21, 2.43 and 3.64 s, then 4.85, 5.1, 5.23 and 5.35 s.
    fake.settings.queue_seconds, fake.settings.run_seconds = 1.0, 4.125
    fake.settings.retry_after = "1"
    seed_history(isolated_dirs / "data", fake.base_url, [(4.9, 5.1)] * 3)
    fake.state.on_submit = lambda body: fake.state.inject("poll", "429")  # the first poll
    env = soul_env(fake, SOUL_POLL_SCALE="0.5")
    result = run_soul("generate", "a dog", "-o", str(out_dir), env=env)
    assert result.code == 0, result.stderr
    polls = polls_since_created(fake)
    # Retry-After wins over the schedule...
    assert polls[1] - polls[0] >= 1.0
    # ...and the API pushed back: the grid from then on (a poll at 5 s in the window, not 3).
    assert len([p for p in polls if 4.6 <= p <= 5.4]) <= 2


def test_each_wait_records_when_the_task_ended_and_the_next_one_uses_it(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    # Tasks of 1.2 s, polled on a grid shrunk 5 times (every 0.2 s at first).
    fake.settings.queue_seconds, fake.settings.run_seconds = 0.2, 1.0
    for _ in range(2):
        assert run_soul("generate", "a dog", "-o", str(out_dir), fake=fake).code == 0
    first, second = done_seen(isolated_dirs)
    for after, by in (first, second):
        assert after is not None and by is not None
        assert after < by and by >= 1.2  # the end lies between: by is after the real end
    # The second task was not polled at the grid's first points (0.2 s, 0.4 s): its
    # polls began near where the first one ended.
    with Ledger.open(isolated_dirs / "data" / "tasks.db") as ledger:
        row = ledger.get(2)
    assert row is not None
    second_polls = [
        r.at - row.created_at for r in fake.requests("GET") if str(row.remote_id) in r.path
    ]
    assert second_polls[0] > 0.45
    assert len(second_polls) <= 1.2 / 0.2 / 2 + 3


def test_the_ledger_offers_the_ends_of_tasks_like_this_one(isolated_dirs: Path) -> None:
    path = isolated_dirs / "data" / "tasks.db"
    request = a_request()
    with Ledger.open(path) as ledger:

        def task(after: float, host: str = "http://a", batch: int | None = None) -> int:
            local_id = ledger.add(request, out_dir=None, api_host=host, batch_id=batch)
            ledger.set_done_seen(local_id, after, after + 1)
            return local_id

        for after in (10.0, 11.0, 12.0):
            task(after)
        task(20.0, batch=7)
        task(21.0, batch=7)
        task(30.0, batch=9)
        task(40.0, host="http://b")
        at_1080p = ledger.add(a_request("1080p"), out_dir=None, api_host="http://a")
        ledger.set_done_seen(at_1080p, 50.0, 51.0)
        unseen = ledger.add(request, out_dir=None, api_host="http://a")
        ledger.set_done_seen(unseen, 5.0, 5.0)  # nonsense (a clock set back): not kept
        ledger.set_done_seen(unseen, -1.0, 5.0)

        def afters(batch: int | None, limit: int = 5) -> list[float]:
            ends = ledger.recent_ends(
                api_host="http://a", quality="720p", batch_id=batch, limit=limit
            )
            assert all(by == after + 1 for after, by in ends)
            return [after for after, _ in ends]

        # Same host and quality only, newest first: a single task's own kind first...
        assert afters(None) == [12.0, 11.0, 10.0, 30.0, 21.0]
        # ...a batch line's own batch first.
        assert afters(7) == [21.0, 20.0, 30.0, 12.0, 11.0]
        assert afters(9, limit=2) == [30.0, 21.0]


def test_an_older_ledger_gains_the_columns(isolated_dirs: Path) -> None:
    from soulcli.ledger import _MIGRATIONS

    path = isolated_dirs / "data" / "tasks.db"
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:  # as soul left it before it recorded ends
        for step in (1, 2):
            for statement in _MIGRATIONS[step].split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute("PRAGMA user_version = 2")
    with Ledger.open(path) as ledger:
        assert ledger.recent_ends(api_host="http://a", quality="720p", batch_id=None) == []
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
        assert {"done_after", "done_by"} <= columns
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 3
