"""`soul fetch` end to end: status, waiting, downloading; it never submits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from soulcli.fake302 import Fake302
from tests.conftest import run_soul


def submit(fake: Fake302) -> str:
    result = run_soul("generate", "a dog", "--no-wait", fake=fake)
    assert result.code == 0, result.stderr
    return result.stdout.strip()


def test_fetch_shows_status_without_downloading(fake: Fake302) -> None:
    task_id = submit(fake)
    result = run_soul("fetch", task_id, fake=fake)
    assert result.code == 0, result.stderr
    assert result.lines[0].startswith(f"{task_id}\t")
    assert fake.requests(server="images") == []


def test_fetch_wait_json_reports_every_job(fake: Fake302) -> None:
    task_id = submit(fake)
    result = run_soul("fetch", task_id, "--wait", "--json", fake=fake)
    assert result.code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["task_id"] == task_id and payload["status"] == "completed"
    assert payload["finished"] is True
    assert [job["status"] for job in payload["jobs"]] == ["completed"] * 4
    assert all(job["url"].endswith("/raw.png") for job in payload["jobs"])
    assert fake.post_count() == 1


def test_fetch_wait_out_downloads_like_generate(fake: Fake302, out_dir: Path) -> None:
    task_id = submit(fake)
    result = run_soul("fetch", task_id, "--wait", "-o", str(out_dir), fake=fake)
    assert result.code == 0, result.stderr
    assert [Path(p).name for p in result.lines] == [f"{task_id}_{i}.png" for i in range(1, 5)]
    assert all(Path(p).is_file() for p in result.lines)
    assert fake.post_count() == 1


def test_fetch_again_never_overwrites_a_different_file(fake: Fake302, out_dir: Path) -> None:
    task_id = submit(fake)
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
    fake: Fake302, out_dir: Path
) -> None:
    fake.settings.never_finish = True
    task_id = submit(fake)
    time.sleep(0.3)
    result = run_soul("fetch", task_id, "-o", str(out_dir), fake=fake)
    assert result.code == 0
    assert result.stdout == ""
    assert f"soul fetch {task_id} --wait --out {out_dir.resolve()}" in result.stderr


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
    assert " · 754s · 0.1 PTC · task higgsfield_abc" in resumed.text()
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
