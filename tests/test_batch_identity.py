"""A batch line is known by its request, not its place: edits, re-runs and two runs pay once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

from soulcli.batchfile import BatchDefaults, batch_key
from soulcli.catalog import resolve_style
from soulcli.fake302 import Fake302, FakeTask
from tests.conftest import run_soul, start_soul, wait_until


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def posted_prompts(fake: Fake302) -> Counter[str]:
    return Counter(json.loads(r.body)["prompt"] for r in fake.requests("POST"))


def test_an_appended_line_is_the_only_one_sent(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    prompts = write(tmp_path / "prompts.txt", "a dog\na cat\na bird\n")
    first = run_soul("batch", str(prompts), "-o", str(out_dir), fake=fake)
    assert first.code == 0, first.stderr
    prompts.write_text("a dog\na cat\na bird\na fish\n")
    again = run_soul("batch", str(prompts), "-o", str(out_dir), fake=fake)
    assert again.code == 0, again.stderr
    assert "3 already done, 1 new (0.1 PTC)" in again.stderr
    assert posted_prompts(fake) == Counter(["a dog", "a cat", "a bird", "a fish"])
    assert len(again.lines) == 16 and set(first.lines) < set(again.lines)


def test_edited_and_reordered_lines(fake: Fake302, tmp_path: Path, out_dir: Path) -> None:
    prompts = write(tmp_path / "prompts.txt", "one\ntwo\nthree\n")
    assert run_soul("batch", str(prompts), "-o", str(out_dir), fake=fake).code == 0
    prompts.write_text("three\n\n# moved around, and one line changed\none\nTWO\n")
    edited = run_soul("batch", str(prompts), "-o", str(out_dir), fake=fake)
    assert edited.code == 0, edited.stderr
    assert "2 already done, 1 new (0.1 PTC)" in edited.stderr
    assert posted_prompts(fake) == Counter(["one", "two", "three", "TWO"])


def test_the_same_prompt_twice_is_two_requests_once(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    prompts = write(tmp_path / "p.txt", "a dog\na dog\n")
    first = run_soul("batch", str(prompts), "-o", str(out_dir), fake=fake)
    assert first.code == 0 and posted_prompts(fake) == Counter({"a dog": 2})
    again = run_soul("batch", str(prompts), "-o", str(out_dir), fake=fake)
    assert "2 already done, 0 new (0 PTC)" in again.stderr and fake.post_count() == 2
    prompts.write_text("a dog\na dog\na dog\n")
    third = run_soul("batch", str(prompts), "-o", str(out_dir), fake=fake)
    assert "2 already done, 1 new (0.1 PTC)" in third.stderr
    assert posted_prompts(fake) == Counter({"a dog": 3})


def test_what_makes_a_line_new(fake: Fake302, tmp_path: Path, out_dir: Path) -> None:
    prompts = write(tmp_path / "p.txt", "a dog\n")
    run_soul("batch", str(prompts), "-o", str(out_dir), fake=fake)
    changes = [
        ["-q", "1080p"],
        ["-s", "Y2K"],
        ["--ar", "16:9"],
        ["--negative", "blur"],
        ["--seed", "7"],
    ]
    changes += [["--enhance"], ["-o", str(tmp_path / "elsewhere")]]
    for options in changes:
        args = ["-o", str(out_dir), *options] if options[0] != "-o" else options
        result = run_soul("batch", str(prompts), *args, fake=fake)
        assert "0 already done, 1 new" in result.stderr, (options, result.stderr)
    same = run_soul("batch", str(prompts), "-o", str(out_dir), "--seed", "7", fake=fake)
    assert "1 already done, 0 new" in same.stderr  # an explicit seed is part of the line
    assert fake.post_count() == 8


def test_a_line_keeps_its_first_random_seed(fake: Fake302, tmp_path: Path, out_dir: Path) -> None:
    prompts = write(tmp_path / "p.txt", "a dog\na cat\n")
    fake.state.inject("submit", "422")  # the first line sent is refused: nothing charged
    first = run_soul("batch", str(prompts), "-o", str(out_dir), "-c", "1", "--json", fake=fake)
    assert first.code == 16
    again = run_soul("batch", str(prompts), "-o", str(out_dir), "--json", fake=fake)
    assert again.code == 0, again.stderr
    assert "1 already done, 1 new (0.1 PTC)" in again.stderr
    bodies = [json.loads(r.body) for r in fake.requests("POST")]
    assert bodies[0]["prompt"] == bodies[2]["prompt"] and bodies[0]["seed"] == bodies[2]["seed"]
    reported = {r["prompt"]: r["seed"] for r in map(json.loads, again.lines)}
    assert reported == {b["prompt"]: b["seed"] for b in bodies[1:]}  # done lines: recorded seed


def test_again_pays_on_purpose_and_only_then(fake: Fake302, tmp_path: Path, out_dir: Path) -> None:
    prompts = write(tmp_path / "p.txt", "a dog\na cat\n")
    run_soul("batch", str(prompts), "-o", str(out_dir), fake=fake)
    again = run_soul("batch", str(prompts), "-o", str(out_dir), "--again", fake=fake)
    assert again.code == 0, again.stderr
    assert "0 already done, 2 new (0.2 PTC)" in again.stderr and fake.post_count() == 4
    seeds = Counter(json.loads(r.body)["seed"] for r in fake.requests("POST"))
    assert len(seeds) == 4  # new random seeds: paying again for the same images is pointless
    plain = run_soul("batch", str(prompts), "-o", str(out_dir), fake=fake)
    assert "2 already done, 0 new" in plain.stderr and fake.post_count() == 4
    both = run_soul("batch", str(prompts), "--again", "--resume", fake=fake)
    assert both.code == 2 and fake.post_count() == 4


def test_two_and_three_runs_at_once_send_each_line_once(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    fake.settings.submit_delay = 0.3  # hold each submit open: the runs overlap
    fake.settings.run_seconds = 1.0
    for runs in (2, 3):
        prompts = write(
            tmp_path / f"p{runs}.txt", "".join(f"run{runs} line {i}\n" for i in range(6))
        )
        procs = [
            start_soul("batch", str(prompts), "-o", str(out_dir), "-c", "3", fake=fake)
            for _ in range(runs)
        ]
        outputs = [proc.communicate(timeout=60) for proc in procs]
        codes = [proc.returncode for proc in procs]
        assert set(codes) <= {0, 16}, outputs
        sent = Counter(p for p in posted_prompts(fake).elements() if p.startswith(f"run{runs}"))
        assert sent == Counter({f"run{runs} line {i}": 1 for i in range(6)}), outputs
        stderr = b"".join(err for _, err in outputs).decode()
        if 16 in codes:
            assert "running elsewhere" in stderr and "soul process" in stderr
        after = run_soul("batch", str(prompts), "-o", str(out_dir), fake=fake)
        assert after.code == 0 and "6 already done, 0 new" in after.stderr, after.stderr


def test_two_resumes_after_a_crash_send_nothing_twice(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    fake.settings.run_seconds = 3.0
    prompts = write(tmp_path / "p.txt", "".join(f"prompt {i}\n" for i in range(6)))
    proc = start_soul("batch", str(prompts), "-o", str(out_dir), "-c", "3", fake=fake)
    wait_until(lambda: fake.poll_count() >= 3, "polling")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert fake.post_count() == 3
    fake.settings.run_seconds = 0.5
    resumes = [
        start_soul("batch", str(prompts), "-o", str(out_dir), "--resume", fake=fake)
        for _ in range(2)
    ]
    outputs = [r.communicate(timeout=60) for r in resumes]
    assert {r.returncode for r in resumes} <= {0, 16}, outputs
    assert posted_prompts(fake) == Counter({f"prompt {i}": 1 for i in range(6)})
    raw_gets = Counter(r.path for r in fake.requests(server="images"))
    assert len(raw_gets) == 24 and max(raw_gets.values()) == 1  # each image fetched once
    assert len(list(out_dir.glob("*.png"))) == 24


def test_fetch_leaves_a_task_to_the_soul_that_is_waiting_for_it(
    fake: Fake302, out_dir: Path
) -> None:
    fake.settings.never_finish = True
    waiting = start_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    try:
        wait_until(lambda: fake.poll_count() >= 1, "polling")
        fetch = run_soul("fetch", fake=fake)
        assert fetch.code == 7
        assert f"soul process {waiting.pid}" in fetch.stderr
        task_id = next(iter(fake.state.tasks))
        assert task_id in fetch.stderr
        by_id = run_soul("fetch", task_id, "--wait", "--out", str(out_dir), fake=fake)
        assert by_id.code == 7 and f"soul process {waiting.pid}" in by_id.stderr
        status = run_soul("fetch", task_id, fake=fake)  # only looking is always fine
        assert status.code == 0 and status.lines[0].startswith(task_id)
    finally:
        waiting.send_signal(signal.SIGKILL)
        waiting.communicate()
    fake.settings.never_finish = False
    resumed = run_soul("fetch", fake=fake)  # its soul is gone: now anyone may finish it
    assert resumed.code == 0 and len(resumed.lines) == 4


V1_SCHEMA = """
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    prompt TEXT NOT NULL, negative_prompt TEXT NOT NULL DEFAULT '', style_id TEXT NOT NULL,
    style_name TEXT NOT NULL, aspect_ratio TEXT NOT NULL, quality TEXT NOT NULL,
    seed INTEGER NOT NULL, enhance_prompt INTEGER NOT NULL DEFAULT 0, price_ptc TEXT NOT NULL,
    api_host TEXT NOT NULL DEFAULT '', out_dir TEXT, remote_id TEXT, state TEXT NOT NULL,
    images TEXT NOT NULL DEFAULT '[]', error TEXT, pid INTEGER, batch_id INTEGER,
    batch_line INTEGER, image_stem TEXT
);
CREATE INDEX tasks_remote_id ON tasks (remote_id);
CREATE INDEX tasks_state ON tasks (state);
CREATE INDEX tasks_batch ON tasks (batch_id, batch_line);
CREATE TABLE batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
    created_at REAL NOT NULL, lines INTEGER NOT NULL
);
PRAGMA user_version = 1;
"""


def test_a_batch_finished_by_soul_0_1_is_not_paid_for_again(
    fake: Fake302, isolated_dirs: Path, tmp_path: Path, out_dir: Path
) -> None:
    text = "a dog\na cat\n"
    prompts = write(tmp_path / "p.txt", text)
    out_dir.mkdir()
    ledger = isolated_dirs / "data" / "tasks.db"
    ledger.parent.mkdir(parents=True)
    general = resolve_style("GENERAL")
    with sqlite3.connect(ledger) as db:
        db.executescript(V1_SCHEMA)
        key = batch_key(text, BatchDefaults(out=str(out_dir)))
        db.execute("INSERT INTO batches VALUES (1, ?, ?, ?, 2)", (key, str(prompts), time.time()))
        for line, prompt in enumerate(["a dog", "a cat"], start=1):
            images = []
            for index in range(1, 5):
                image = out_dir / f"higgsfield_old{line}_{index}.png"
                image.write_bytes(b"an image")
                images.append({"index": index, "status": "completed", "path": str(image)})
            db.execute(
                "INSERT INTO tasks (created_at, updated_at, prompt, style_id, style_name,"
                " aspect_ratio, quality, seed, price_ptc, out_dir, remote_id, state, images,"
                " batch_id, batch_line) VALUES (?,?,?,?,?,'1:1','720p',?,'0.1',?,?,?,?,1,?)",
                (time.time(), time.time(), prompt, general.id, general.name, 100 + line,
                 str(out_dir), f"higgsfield_old{line}", "completed", json.dumps(images), line),
            )  # fmt: skip
        # A generate that 0.1 left unfinished; its pid now belongs to another program.
        db.execute(
            "INSERT INTO tasks (created_at, updated_at, prompt, style_id, style_name,"
            " aspect_ratio, quality, seed, price_ptc, out_dir, remote_id, state, pid)"
            " VALUES (?,?,'a fox',?,?,'1:1','720p',7,'0.1',?,'higgsfield_old3','submitted',?)",
            (time.time(), time.time(), general.id, general.name, str(out_dir), os.getpid()),
        )
        # And one 0.1 left in `submitting` two hours ago; its pid now runs something else.
        db.execute(
            "INSERT INTO tasks (created_at, updated_at, prompt, style_id, style_name,"
            " aspect_ratio, quality, seed, price_ptc, state, pid)"
            " VALUES (?,?,'an owl',?,?,'1:1','720p',8,'0.1','submitting',?)",
            (time.time() - 7200, time.time() - 7200, general.id, general.name, os.getpid()),
        )
    body = {"aspect_ratio": "1:1", "quality": "720p", "prompt": "a fox"}
    fake.state.tasks["higgsfield_old3"] = FakeTask("higgsfield_old3", body, 0.0, ["completed"])
    result = run_soul("batch", str(prompts), "-o", str(out_dir), fake=fake)
    assert result.code == 0, result.stderr
    assert "2 already done, 0 new (0 PTC)" in result.stderr
    assert fake.post_count() == 0 and len(result.lines) == 8
    history = json.loads(run_soul("history", "--json", fake=fake).stdout)
    ids = sorted(str(t["task_id"]) for t in history)
    assert ids == ["None", *(f"higgsfield_old{i}" for i in (1, 2, 3))]
    assert [t["state"] for t in history if t["prompt"] == "an owl"] == ["outcome_unknown"]
    with sqlite3.connect(ledger) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 2
        assert db.execute("SELECT count(*) FROM tasks").fetchone()[0] == 4
    resumed = run_soul("fetch", fake=fake)  # not mistaken for a task another soul follows
    assert resumed.code == 0, resumed.stderr
    assert [Path(p).name for p in resumed.lines] == ["higgsfield_old3_1.png"]


def test_killed_while_claimed_is_resumed_not_resent(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    fake.settings.submit_delay = 5.0
    prompts = write(tmp_path / "p.txt", "only line\n")
    proc = start_soul("batch", str(prompts), "-o", str(out_dir), fake=fake)
    wait_until(lambda: fake.post_count() == 1, "the POST")
    proc.send_signal(signal.SIGKILL)  # the claim is in the ledger, the answer never came
    proc.communicate()
    fake.settings.submit_delay = 0.0
    again = run_soul("batch", str(prompts), "-o", str(out_dir), fake=fake)
    assert again.code == 16 and "left alone (may have been charged)" in again.stderr
    assert fake.post_count() == 1
