"""The task ledger through the real CLI: written before the POST, resumable after any stop."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from soulcli.fake302 import Fake302
from tests.conftest import SENTINEL_KEY, run_soul, start_soul, wait_until


def ledger_rows(isolated_dirs: Path) -> list[dict[str, Any]]:
    path = isolated_dirs / "data" / "tasks.db"
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM tasks ORDER BY id")]


def start_generate(fake: Fake302, out_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    return start_soul("generate", "a dog", "-o", str(out_dir), *args, fake=fake)


def wait_for_polls(fake: Fake302, count: int = 1) -> None:
    wait_until(lambda: fake.poll_count() >= count, "polling")


def test_row_is_written_before_the_post_is_sent(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    seen: list[list[dict[str, Any]]] = []
    fake.state.on_submit = lambda body: seen.append(ledger_rows(isolated_dirs))
    result = run_soul("generate", "a fox", "-o", str(out_dir), fake=fake)
    assert result.code == 0, result.stderr
    assert len(seen) == 1 and len(seen[0]) == 1
    at_post = seen[0][0]
    assert at_post["state"] == "submitting" and at_post["prompt"] == "a fox"
    assert at_post["remote_id"] is None
    final = ledger_rows(isolated_dirs)[0]
    assert final["state"] == "completed" and final["remote_id"].startswith("higgsfield_")
    images = json.loads(final["images"])
    assert [Path(i["path"]).is_file() for i in images] == [True] * 4


def test_task_id_is_recorded_before_the_first_poll(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    fake.settings.never_finish = True
    proc = start_generate(fake, out_dir)
    try:
        wait_for_polls(fake)
        row = ledger_rows(isolated_dirs)[0]
        assert row["state"] == "submitted"
        assert row["remote_id"] == next(iter(fake.state.tasks))
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_stopped_while_polling_then_soul_fetch_finishes_it(
    fake: Fake302, isolated_dirs: Path, out_dir: Path, how: int
) -> None:
    fake.settings.never_finish = True
    proc = start_generate(fake, out_dir)
    wait_for_polls(fake)
    proc.send_signal(how)
    _, stderr = proc.communicate(timeout=20)
    task_id = next(iter(fake.state.tasks))
    if how == signal.SIGINT:
        assert proc.returncode == 130
        assert task_id in stderr.decode() and "soul fetch" in stderr.decode()
    assert ledger_rows(isolated_dirs)[0]["state"] == "submitted"
    assert list(out_dir.iterdir()) == []  # no partial files
    fake.settings.never_finish = False
    posts_before = fake.post_count()
    resumed = run_soul("fetch", fake=fake, cwd=isolated_dirs)
    assert resumed.code == 0, resumed.stderr
    assert fake.post_count() == posts_before == 1
    paths = [Path(line) for line in resumed.lines]
    assert len(paths) == 4 and all(p.parent == out_dir.resolve() and p.is_file() for p in paths)
    assert ledger_rows(isolated_dirs)[0]["state"] == "completed"
    again = run_soul("fetch", fake=fake)
    assert again.code == 7 and "no unfinished task" in again.stderr


def test_dropped_connection_after_post_is_outcome_unknown(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    fake.state.inject("submit", "drop")
    result = run_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    assert result.code == 10
    assert "may have been charged" in result.stderr
    assert fake.post_count() == 1
    row = ledger_rows(isolated_dirs)[0]
    assert row["state"] == "outcome_unknown" and row["remote_id"] is None
    assert "may have been charged" in row["error"]
    history = json.loads(run_soul("history", "--json", fake=fake).stdout)
    assert history[0]["state"] == "outcome_unknown"
    table = run_soul("history", fake=fake)
    assert "0.1 PTC possibly charged" in table.stderr


def test_refused_submit_is_failed_and_costs_nothing(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    fake.state.inject("submit", "402")
    result = run_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    assert result.code == 5
    row = ledger_rows(isolated_dirs)[0]
    assert row["state"] == "failed" and "not submitted" in row["error"]
    assert "spent 0 PTC" in run_soul("history", fake=fake).stderr


def test_two_concurrent_runs_keep_two_intact_rows(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    procs = [start_generate(fake, out_dir, "--seed", str(seed)) for seed in (1, 2)]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    rows = ledger_rows(isolated_dirs)
    assert len(rows) == 2 and {r["state"] for r in rows} == {"completed"}
    assert {r["seed"] for r in rows} == {1, 2}
    assert len({r["remote_id"] for r in rows}) == 2
    images = sorted(out_dir.glob("*.png"))
    assert len(images) == 8
    assert sorted(p.name for p in out_dir.iterdir() if p.suffix not in (".png", ".json")) == []
    with sqlite3.connect(isolated_dirs / "data" / "tasks.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_history_json_round_trips_and_the_key_is_stored_nowhere(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    generated = json.loads(
        run_soul(
            "generate",
            "a red fox",
            "-s",
            "Y2K",
            "-a",
            "3:4",
            "-q",
            "high",
            "--seed",
            "77",
            "--negative",
            "blur",
            "--enhance",
            "--json",
            "-o",
            str(out_dir),
            fake=fake,
        ).stdout
    )
    history = json.loads(run_soul("history", "--json", fake=fake).stdout)
    assert len(history) == 1
    task = history[0]
    for key in (
        "prompt",
        "negative_prompt",
        "style",
        "aspect_ratio",
        "quality",
        "seed",
        "enhance_prompt",
        "cost_ptc",
        "task_id",
    ):
        assert task[key] == generated[key], key
    assert task["state"] == "completed"
    assert [i["path"] for i in task["images"]] == [i["path"] for i in generated["images"]]
    for path in (isolated_dirs / "data").rglob("*"):
        if path.is_file():
            assert SENTINEL_KEY.encode() not in path.read_bytes(), path
    for path in out_dir.iterdir():
        assert SENTINEL_KEY.encode() not in path.read_bytes(), path


def test_sidecars_hold_the_request_and_like_repeats_it(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    first = json.loads(
        run_soul(
            "generate",
            "a blue owl",
            "-s",
            "Glitch",
            "-a",
            "2:3",
            "--seed",
            "4242",
            "--negative",
            "text",
            "--json",
            "-o",
            str(out_dir),
            fake=fake,
        ).stdout
    )
    image = Path(first["images"][0]["path"])
    sidecar = json.loads(image.with_suffix(".json").read_text())
    assert sidecar["prompt"] == "a blue owl" and sidecar["negative_prompt"] == "text"
    assert sidecar["style"]["name"] == "Glitch" and sidecar["aspect_ratio"] == "2:3"
    assert sidecar["seed"] == 4242 and sidecar["quality"] == "720p"
    assert sidecar["enhance_prompt"] is False
    assert sidecar["task_id"] == first["task_id"]
    assert sidecar["source_url"] == first["images"][0]["url"]

    again = run_soul(
        "generate", "--like", str(image), "-q", "1080p", "--json", "-o", str(out_dir), fake=fake
    )
    assert again.code == 0, again.stderr
    bodies = [json.loads(r.body) for r in fake.requests("POST")]
    assert bodies[1] == {**bodies[0], "quality": "1080p"}

    by_task = run_soul(
        "generate", "--like", first["task_id"], "--seed", "9", "--dry-run", "--json", fake=fake
    )
    assert json.loads(by_task.stdout)["body"] == {**bodies[0], "seed": 9}
    missing = run_soul("generate", "--like", "higgsfield_nope", fake=fake)
    assert missing.code == 2 and "--like" in missing.stderr


def test_timeout_is_recorded_and_resumable(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    fake.settings.never_finish = True
    result = run_soul("generate", "a dog", "--timeout", "1", "-o", str(out_dir), fake=fake)
    assert result.code == 11
    assert ledger_rows(isolated_dirs)[0]["state"] == "timed_out"
    fake.settings.never_finish = False
    resumed = run_soul("fetch", fake=fake)
    assert resumed.code == 0 and len(resumed.lines) == 4
    assert fake.post_count() == 1


def test_fetch_last_reports_the_newest_task_from_the_ledger(fake: Fake302, out_dir: Path) -> None:
    first = run_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    polls = fake.poll_count()
    last = run_soul("fetch", "--last", fake=fake)
    assert last.code == 0 and last.lines == first.lines
    assert fake.poll_count() == polls  # finished and on disk: no network needed


def test_confirm_above_refuses_without_a_terminal_unless_yes(fake: Fake302, out_dir: Path) -> None:
    assert run_soul("config", "set", "confirm_above", "0.15", fake=fake).code == 0
    cheap = run_soul("generate", "a dog", "-q", "720p", "--no-wait", fake=fake)
    assert cheap.code == 0
    pricey = run_soul("generate", "a dog", "-q", "1080p", "-o", str(out_dir), fake=fake)
    assert pricey.code == 15
    assert "0.2 PTC" in pricey.stderr and "--yes" in pricey.stderr
    assert fake.post_count() == 1
    confirmed = run_soul("generate", "a dog", "-q", "1080p", "--yes", "--no-wait", fake=fake)
    assert confirmed.code == 0 and fake.post_count() == 2


def test_history_filters_and_show(fake: Fake302, out_dir: Path) -> None:
    run_soul("generate", "a dog on a skateboard", "-o", str(out_dir), fake=fake)
    fake.settings.outcomes = ["completed", "completed", "completed", "nsfw"]
    run_soul("generate", "a cat in a box", "-q", "1080p", "-o", str(out_dir), fake=fake)
    table = run_soul("history", fake=fake)
    assert table.code == 0
    assert "a dog on a skateboard" in table.stdout and "a cat in a box" in table.stdout
    assert "2 tasks · spent 0.3 PTC" in table.stderr
    assert table.stdout.index("a cat in a box") < table.stdout.index("a dog on a skateboard")
    only_dogs = json.loads(run_soul("history", "--search", "DOG", "--json", fake=fake).stdout)
    assert [t["prompt"] for t in only_dogs] == ["a dog on a skateboard"]
    partial = json.loads(run_soul("history", "--state", "partial", "--json", fake=fake).stdout)
    assert [t["prompt"] for t in partial] == ["a cat in a box"]
    assert (
        json.loads(run_soul("history", "--limit", "1", "--json", fake=fake).stdout)[0]["prompt"]
        == "a cat in a box"
    )
    assert len(json.loads(run_soul("history", "--since", "1h", "--json", fake=fake).stdout)) == 2
    assert (
        json.loads(run_soul("history", "--since", "2000-01-01", "--json", fake=fake).stdout)[0][
            "id"
        ]
        == 2
    )
    shown = run_soul("history", "show", "2", fake=fake)
    assert shown.code == 0 and "image 4: not saved (nsfw)" in shown.stdout
    assert sum(1 for line in shown.lines if line.startswith("image ")) == 4
    assert run_soul("history", "show", "99", fake=fake).code == 7
    bad = run_soul("history", "--since", "yesterday", fake=fake)
    assert bad.code == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_rows_added_at_once_list_in_the_order_of_their_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker threads read the clock before they take the ledger's lock: a row may be
    added with an earlier time than the row before it. The newest is still the last."""
    import time as clock

    from soulcli.ledger import Ledger
    from soulcli.models import GenerationRequest

    request = GenerationRequest("a dog", "id", "GENERAL", "1:1", "720p", 7)
    times = iter([1000.0, 999.0, 998.5])
    monkeypatch.setattr(clock, "time", lambda: next(times, 2000.0))
    with Ledger.open(tmp_path / "tasks.db") as ledger:
        ids = [ledger.add(request, out_dir=None, api_host="h") for _ in range(3)]
        assert ledger.newest() is not None and ledger.newest().id == ids[-1]  # type: ignore[union-attr]
        assert [r.id for r in ledger.search()] == list(reversed(ids))
