"""Other shapes of the task object (JobSet, short job lists, `error` jobs) through the real CLI."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from soulcli.fake302 import Fake302
from tests.conftest import run_soul, soul_env


def test_one_job_task_without_a_task_status_finishes(fake: Fake302, out_dir: Path) -> None:
    fake.settings.outcomes = ["completed"]
    fake.settings.top_level_status = False
    started = time.monotonic()
    result = run_soul("generate", "a dog", "--timeout", "20", "-o", str(out_dir), fake=fake)
    assert result.code == 0, result.stderr
    assert time.monotonic() - started < 10  # finished when its one job did, not at the timeout
    assert [Path(p).name for p in result.lines] == [f"{next(iter(fake.state.tasks))}_1.png"]
    assert fake.poll_count() <= 6  # one more poll shows the one-job list is not growing


def test_two_final_jobs_without_a_task_status_end_partial(fake: Fake302, out_dir: Path) -> None:
    fake.settings.outcomes = ["completed", "nsfw"]
    fake.settings.top_level_status = False
    result = run_soul(
        "generate", "a dog", "--timeout", "20", "--json", "-o", str(out_dir), fake=fake
    )
    assert result.code == 12, result.stderr
    payload = json.loads(result.stdout)
    assert payload["status"] == "partial" and len(payload["images"]) == 1
    assert payload["missing"] == [{"index": 2, "status": "nsfw", "reason": ""}]


def test_error_jobs_are_final_failures(fake: Fake302, out_dir: Path) -> None:
    fake.settings.outcomes = ["completed", "completed", "completed", "error"]
    partial = run_soul("generate", "a dog", "--timeout", "20", "-o", str(out_dir), fake=fake)
    assert partial.code == 12, partial.stderr
    assert "image 4 of task" in partial.stderr and "(error)" in partial.stderr
    assert len(partial.lines) == 3
    fake.settings.outcomes = ["error"] * 4
    failed = run_soul("generate", "a dog", "--timeout", "20", "-o", str(out_dir), fake=fake)
    assert failed.code == 13, failed.stderr


def test_processing_and_pending_show_as_in_progress_and_queued(
    fake: Fake302, tmp_path: Path
) -> None:
    fake.settings.running_word = "processing"
    fake.settings.queued_word = "pending"
    fake.settings.never_finish = True
    fake.settings.queue_seconds = 0.0
    # Submitted by a soul with another ledger: `soul fetch ID` only shows such a task.
    elsewhere = soul_env(fake, SOUL_DATA_DIR=str(tmp_path / "elsewhere"))
    submitted = run_soul("generate", "a dog", "--no-wait", env=elsewhere, cwd=tmp_path)
    running = run_soul("fetch", submitted.stdout.strip(), "--json", fake=fake)
    assert json.loads(running.stdout)["status"] == "in progress"
    fake.settings.queue_seconds = 3600.0
    fake.settings.empty_jobs_while_queued = False
    queued_id = run_soul("generate", "a cat", "--no-wait", env=elsewhere).stdout.strip()
    queued = run_soul("fetch", queued_id, fake=fake)
    assert queued.lines[0].split("\t")[1] == "queued"
    assert [line.split("\t")[1] for line in queued.lines[1:]] == ["pending"] * 4


def test_unknown_statuses_still_end_at_the_timeout(fake: Fake302, out_dir: Path) -> None:
    fake.settings.running_word = "rendering"
    fake.settings.never_finish = True
    started = time.monotonic()
    result = run_soul("generate", "a dog", "--timeout", "1.5", "-o", str(out_dir), fake=fake)
    assert result.code == 11 and "gave up waiting" in result.stderr
    assert time.monotonic() - started < 10


def test_a_short_list_once_is_not_the_end_of_a_task(fake: Fake302, out_dir: Path) -> None:
    """Two final jobs and no task status, then all four: soul waits and saves all four."""
    fake.settings.top_level_status = False
    fake.settings.run_seconds = 0.1
    fake.settings.queue_seconds = 0.0
    fake.state.on_submit = lambda body: fake.state.inject("poll", "shrink")
    result = run_soul("generate", "a dog", "--json", "-o", str(out_dir), fake=fake)
    assert result.code == 0, result.stderr
    assert len(json.loads(result.stdout)["images"]) == 4


def test_one_look_at_a_short_list_does_not_close_the_task(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    fake.settings.outcomes = ["completed"]
    fake.settings.top_level_status = False
    fake.settings.queue_seconds = 0.0
    fake.settings.run_seconds = 0.0
    task_id = run_soul("generate", "a dog", "--no-wait", fake=fake).stdout.strip()
    looked = run_soul("fetch", task_id, "--out", str(out_dir), fake=fake)
    assert looked.code == 0 and len(looked.lines) == 1
    with sqlite3.connect(isolated_dirs / "data" / "tasks.db") as db:
        assert db.execute("SELECT state FROM tasks").fetchone()[0] == "submitted"
    waited = run_soul("fetch", task_id, "--out", str(out_dir), "--wait", fake=fake)
    assert waited.code == 0, waited.stderr
    with sqlite3.connect(isolated_dirs / "data" / "tasks.db") as db:
        assert db.execute("SELECT state FROM tasks").fetchone()[0] == "completed"
