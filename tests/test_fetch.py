"""`soul fetch` end to end: status, waiting, downloading; it never submits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from soulcli.fake302 import Fake302
from tests.conftest import run_soul, soul_env, wait_until


def submit(fake: Fake302, where: Path, *, elsewhere: bool = False) -> str:
    """A task submitted without waiting, from the directory `where` (so its recorded
    output directory); `elsewhere`: by a soul with another ledger, as on another machine."""
    env = soul_env(fake, SOUL_DATA_DIR=str(where / "elsewhere")) if elsewhere else None
    result = run_soul("generate", "a dog", "--no-wait", fake=fake, env=env, cwd=where)
    assert result.code == 0, result.stderr
    return result.stdout.strip()


def test_fetch_of_a_task_soul_did_not_submit_shows_status_without_downloading(
    fake: Fake302, tmp_path: Path
) -> None:
    task_id = submit(fake, tmp_path, elsewhere=True)
    result = run_soul("fetch", task_id, fake=fake, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert result.lines[0].startswith(f"{task_id}\t")
    assert fake.requests(server="images") == []
    assert list(tmp_path.glob("*.png")) == []


def test_fetch_wait_json_reports_every_job(fake: Fake302, tmp_path: Path) -> None:
    task_id = submit(fake, tmp_path, elsewhere=True)
    result = run_soul("fetch", task_id, "--wait", "--json", fake=fake)
    assert result.code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["task_id"] == task_id and payload["status"] == "completed"
    assert payload["finished"] is True
    assert [job["status"] for job in payload["jobs"]] == ["completed"] * 4
    assert all(job["url"].endswith("/raw.png") for job in payload["jobs"])
    assert fake.post_count() == 1


def test_fetch_wait_out_downloads_like_generate(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    task_id = submit(fake, tmp_path)
    result = run_soul("fetch", task_id, "--wait", "-o", str(out_dir), fake=fake)
    assert result.code == 0, result.stderr
    assert [Path(p).name for p in result.lines] == [f"{task_id}_{i}.png" for i in range(1, 5)]
    assert all(Path(p).is_file() for p in result.lines)
    assert fake.post_count() == 1


def test_fetch_again_never_overwrites_a_different_file(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    task_id = submit(fake, tmp_path)
    first = run_soul("fetch", task_id, "--wait", "-o", str(out_dir), fake=fake)
    assert first.code == 0
    edited = out_dir / f"{task_id}_1.png"
    edited.write_bytes(b"my own edit")
    again = run_soul("fetch", task_id, "-o", str(out_dir), fake=fake)
    assert again.code == 0, again.stderr
    assert edited.read_bytes() == b"my own edit"
    assert (out_dir / f"{task_id}_1-2.png").is_file()
    assert "already exists" in again.stderr
    # The three untouched images were identical: reused, not duplicated.
    assert len(list(out_dir.glob("*.png"))) == 5


def test_fetch_of_an_unfinished_task_without_wait_says_how_to_finish(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    fake.settings.never_finish = True
    task_id = submit(fake, tmp_path)
    time.sleep(0.3)
    result = run_soul("fetch", task_id, "-o", str(out_dir), fake=fake)
    assert result.code == 0
    assert result.stdout == ""
    assert f"soul fetch {task_id} --wait --out {out_dir.resolve()}" in result.stderr


def test_fetch_n_saves_into_the_recorded_directory_without_out(
    fake: Fake302, tmp_path: Path
) -> None:
    pics = tmp_path / "pics"
    submitted = run_soul("generate", "a dog", "--no-wait", "-o", str(pics), fake=fake)
    task_id = submitted.stdout.strip()
    task = fake.state.tasks[task_id]
    wait_until(lambda: time.time() > task.finishes_at(fake.settings) + 0.1, "the task's end")
    result = run_soul("fetch", "1", fake=fake, cwd=tmp_path)  # the local id; no --wait
    assert result.code == 0, result.stderr
    assert result.lines == [str(pics.resolve() / f"{task_id}_{i}.png") for i in range(1, 5)]
    assert all(Path(p).is_file() for p in result.lines)
    assert f"saving task {task_id} ('a dog') into {pics.resolve()}" in result.stderr
    assert list(tmp_path.glob("*.png")) == []
    polls, downloads = fake.poll_count(), len(fake.requests(server="images"))
    again = run_soul("fetch", task_id, "--json", fake=fake)  # all on disk: no network at all
    assert again.code == 0, again.stderr
    payload = json.loads(again.stdout)
    assert payload["status"] == "completed"
    assert [image["path"] for image in payload["images"]] == result.lines
    assert fake.poll_count() == polls and len(fake.requests(server="images")) == downloads
    assert fake.post_count() == 1


def test_fetch_n_wait_follows_a_ledger_task_into_its_directory(
    fake: Fake302, tmp_path: Path
) -> None:
    pics = tmp_path / "pics"
    task_id = run_soul("generate", "a cat", "--no-wait", "-o", str(pics), fake=fake).stdout.strip()
    result = run_soul("fetch", task_id, "--wait", fake=fake)
    assert result.code == 0, result.stderr
    assert [Path(p).parent for p in result.lines] == [pics.resolve()] * 4
    assert fake.post_count() == 1
    assert json.loads(run_soul("history", "--json", fake=fake).stdout)[0]["state"] == "completed"


def test_fetch_rejects_a_malformed_task_id_before_sending(fake: Fake302) -> None:
    result = run_soul("fetch", "../../etc/passwd", fake=fake)
    assert result.code == 2
    assert "not a task id" in result.stderr
    assert fake.requests() == []


def test_the_wait_line_counts_from_the_submission_when_it_is_known(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from soulcli import ui

    monkeypatch.setattr(time, "time", lambda: 10_000.0)
    resumed = ui.WaitLine("higgsfield_abc", "0.1", started_at=10_000.0 - 754.6)
    assert " · 12m34s · 0.1 PTC · task higgsfield_abc" in resumed.text()
    ahead = ui.WaitLine("higgsfield_abc", "0.1", started_at=10_050.0)  # the clock stepped back
    assert " · 0s · " in ahead.text()


def test_the_wait_line_of_an_unknown_task_counts_from_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from soulcli import ui

    now = [500.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    line = ui.WaitLine("higgsfield_abc", "?")
    assert " · 0s · " in line.text()
    now[0] += 12.5
    assert " · 12s · " in line.text()
