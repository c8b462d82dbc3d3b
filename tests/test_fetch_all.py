"""`soul fetch` with no id: every unfinished task, each into its own directory, no POST."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from soulcli.fake302 import Fake302
from tests.conftest import run_soul, start_soul, wait_until


def submit(fake: Fake302, out_dir: Path, prompt: str = "a dog") -> str:
    result = run_soul("generate", prompt, "--no-wait", "-o", str(out_dir), fake=fake)
    assert result.code == 0, result.stderr
    return result.stdout.strip()


def stuck(fake: Fake302, task_id: str) -> None:
    """Keep one task of the fake queued for an hour (the others run as usual)."""
    fake.state.tasks[task_id].created = time.monotonic() + 3600


def polled(fake: Fake302, task_id: str) -> bool:
    return any(task_id in r.path for r in fake.requests("GET"))


def test_fetch_resumes_every_unfinished_task_into_its_recorded_directory(
    fake: Fake302, tmp_path: Path
) -> None:
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first = submit(fake, first_dir, "a dog")
    second = submit(fake, second_dir, "a cat")
    posts = fake.post_count()
    result = run_soul("fetch", fake=fake, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert fake.post_count() == posts == 2  # a fetch never submits
    # Oldest first, each task's four images in the directory it was submitted with.
    paths = [Path(line) for line in result.lines]
    assert paths[:4] == [first_dir.resolve() / f"{first}_{i}.png" for i in range(1, 5)]
    assert paths[4:] == [second_dir.resolve() / f"{second}_{i}.png" for i in range(1, 5)]
    assert all(path.is_file() for path in paths)
    assert "soul: resuming 2 unfinished tasks" in result.stderr
    assert f"[1/2] resuming task {first} ('a dog') into {first_dir.resolve()}" in result.stderr
    assert f"[2/2] resuming task {second} ('a cat') into {second_dir.resolve()}" in result.stderr
    assert "2 of 2 tasks completed" in result.stderr
    assert list(tmp_path.glob("*.png")) == []  # nothing in the current directory
    again = run_soul("fetch", fake=fake)
    assert again.code == 7 and "no unfinished task to resume" in again.stderr
    assert fake.post_count() == 2


def test_fetch_out_gathers_every_task_and_json_is_one_object_per_task(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    first = submit(fake, tmp_path / "first")
    second = submit(fake, tmp_path / "second")
    result = run_soul("fetch", "--out", str(out_dir), "--json", fake=fake)
    assert result.code == 0, result.stderr
    objects = [json.loads(line) for line in result.lines]
    assert [o["task_id"] for o in objects] == [first, second]
    assert all(o["status"] == "completed" and len(o["images"]) == 4 for o in objects)
    assert len(list(out_dir.glob("*.png"))) == 8
    assert not (tmp_path / "first").exists()  # --out wins over the recorded directories
    assert fake.post_count() == 2


def test_fetch_skips_a_task_another_soul_follows_and_resumes_the_rest(
    fake: Fake302, tmp_path: Path
) -> None:
    followed = submit(fake, tmp_path / "followed")
    other = submit(fake, tmp_path / "other")
    stuck(fake, followed)
    follower = start_soul("fetch", followed, "--wait", fake=fake)
    try:
        wait_until(lambda: polled(fake, followed), "the follower's first poll")
        result = run_soul("fetch", fake=fake)
        assert result.code == 0, result.stderr
        assert f"skipping task {followed}: soul process {follower.pid}" in result.stderr
        assert [Path(p).parent for p in result.lines] == [(tmp_path / "other").resolve()] * 4
        assert other in result.lines[0]
        look = run_soul("fetch", followed, fake=fake)  # by id: it only looks, saves nothing
        assert look.code == 0 and look.lines[0].startswith(f"{followed}\tqueued")
        assert f"followed by soul process {follower.pid}" in look.stderr
        assert not (tmp_path / "followed").exists() or not any((tmp_path / "followed").iterdir())
    finally:
        follower.send_signal(signal.SIGKILL)
        follower.communicate()
    assert fake.post_count() == 2


def test_one_overall_timeout_and_the_first_problem_sets_the_exit_code(
    fake: Fake302, tmp_path: Path
) -> None:
    slow = submit(fake, tmp_path / "slow")
    quick = submit(fake, tmp_path / "quick")
    stuck(fake, slow)
    time.sleep(1.0)  # the quick one is done on the server
    started = time.monotonic()
    result = run_soul("fetch", "--timeout", "2", fake=fake)
    assert time.monotonic() - started < 10  # not 2 s for each task
    assert result.code == 11, result.stderr  # the slow task's timeout
    assert f"gave up waiting for task {slow}" in result.stderr
    assert f"soul fetch {slow} --wait --out {(tmp_path / 'slow').resolve()}" in result.stderr
    # The deadline had passed when its turn came, but one look found it finished.
    assert [Path(p).name for p in result.lines] == [f"{quick}_{i}.png" for i in range(1, 5)]
    assert "1 of 2 tasks completed" in result.stderr
    fake.state.tasks[slow].created = time.monotonic() - 10  # the slow one finishes too
    rest = run_soul("fetch", fake=fake)
    assert rest.code == 0, rest.stderr
    assert [Path(p).name for p in rest.lines] == [f"{slow}_{i}.png" for i in range(1, 5)]
    assert "resuming 2" not in rest.stderr  # one task left: no count line
    assert fake.post_count() == 2


def test_a_task_killed_while_submitting_is_told_once_and_does_not_stop_the_others(
    fake: Fake302, tmp_path: Path
) -> None:
    task_id = submit(fake, tmp_path / "fine")
    killed = start_soul("generate", "a kite", "-o", str(tmp_path / "kite"), fake=fake)
    # The server has the request (and would charge it); soul dies before the answer.
    fake.state.on_submit = lambda body: killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)
    fake.state.on_submit = None
    assert fake.post_count() == 2
    result = run_soul("fetch", fake=fake)
    assert result.code == 10, result.stderr  # MAYBE_CHARGED: nothing worse happened
    assert "('a kite') never got a task id" in result.stderr
    assert "may have been charged" in result.stderr
    assert [Path(p).name for p in result.lines] == [f"{task_id}_{i}.png" for i in range(1, 5)]
    again = run_soul("fetch", fake=fake)  # told once: now it is in `soul history`
    assert again.code == 7 and "no unfinished task to resume" in again.stderr
    assert "a kite" not in again.stderr
    assert fake.post_count() == 2


def test_tasks_sent_to_another_api_are_left_alone_and_named(fake: Fake302, tmp_path: Path) -> None:
    from tests.conftest import soul_env

    demo = submit(fake, tmp_path / "demo", "a dog from the demo")
    mine = submit(fake, tmp_path / "mine", "a cat")
    # The same ledger, now pointed at another API (the real one after the demo, say):
    # here the same fake under another name, so a wrong poll would still be answered.
    other = fake.base_url.replace("127.0.0.1", "localhost")
    env = soul_env(fake, SOUL_BASE_URL=other)
    with_both = run_soul("fetch", env=env)
    assert with_both.code == 7 and fake.poll_count() == 0
    assert f"skipping task {demo}: it was sent to {fake.base_url}, not {other}" in (
        with_both.stderr
    )
    assert f"SOUL_BASE_URL={fake.base_url} soul fetch" in with_both.stderr
    back = run_soul("fetch", fake=fake)  # on the API they were sent to, both finish
    assert back.code == 0, back.stderr
    assert {Path(p).parent.name for p in back.lines} == {"demo", "mine"} and mine in back.stdout
