"""Chaos, bounded: kill generate and batch at random moments, resume, and count what was lost.

Each round starts a `soul generate` or a `soul batch` of fresh prompts, stops it with
SIGKILL, SIGINT or SIGTERM after a random delay (while loading, submitting, polling,
downloading or saving), then recovers as a user would: the same batch command again,
or `soul fetch` until nothing is left. At the end no prompt was sent twice, every task
the server made is either finished in the ledger or recorded as possibly charged,
and no temp file is left anywhere.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

from soulcli.fake302 import Fake302
from tests.conftest import run_soul, start_soul, wait_for_soul_code

BUDGET_SECONDS = 40.0  # the last round and its recovery stay within 60 s
SIGNALS = [signal.SIGKILL, signal.SIGINT, signal.SIGTERM]


def test_kills_at_random_moments_lose_nothing_and_pay_once(
    fake: Fake302, isolated_dirs: Path, tmp_path: Path
) -> None:
    fake.settings.run_seconds = 0.6
    fake.settings.submit_delay = 0.15
    fake.settings.image_size = 256 * 1024
    fake.settings.bandwidth = 1024 * 1024
    rng = random.Random(20261124)
    out_root = tmp_path / "out"
    started = time.monotonic()
    rounds = 0
    while time.monotonic() - started < BUDGET_SECONDS or rounds < 4:
        rounds += 1
        out = out_root / f"round{rounds}"
        how = rng.choice(SIGNALS)
        if rounds % 2:
            args = ["generate", f"round {rounds} prompt", "-o", str(out)]
        else:
            prompts = tmp_path / f"round{rounds}.txt"
            prompts.write_text("".join(f"round {rounds} line {i}\n" for i in range(4)))
            args = ["batch", str(prompts), "-o", str(out), "-c", "2"]
        proc = start_soul(*args, fake=fake)
        # From the moment soul's own code runs (before that, Python itself is starting).
        wait_for_soul_code(proc)
        time.sleep(rng.uniform(0.0, 2.5))
        proc.send_signal(how)
        _, stderr = proc.communicate(timeout=60)
        assert b"Traceback" not in stderr
        if how != signal.SIGKILL and proc.returncode not in (0, 16):
            errors = [line for line in stderr.splitlines() if line.startswith(b"soul: error:")]
            assert len(errors) == 1, stderr
        recover(args, fake)
    check_ledger_against_server(fake, isolated_dirs)
    print(f"chaos: {rounds} rounds, {fake.post_count()} POSTs, {len(fake.state.tasks)} tasks")
    left = [p for p in out_root.rglob("*") if p.is_file() and p.suffix not in (".png", ".json")]
    assert left == [], f"temp files left after {rounds} rounds"


def recover(args: list[str], fake: Fake302) -> None:
    """What a user does after a stop: the same batch command again, or `soul fetch`."""
    if args[0] == "batch":
        again = run_soul(*args, fake=fake, timeout=120)
        assert again.code in (0, 16), again.stderr  # 16: a line left alone, maybe charged
        if again.code == 16:
            assert "may have been charged" in again.stderr
        return
    for _ in range(5):
        fetched = run_soul("fetch", fake=fake, timeout=120)
        if fetched.code == 7:
            assert "no unfinished task" in fetched.stderr
            return
        if fetched.code == 10:  # a kill cut the POST: said once, by the fetch that found it
            assert "may have been charged" in fetched.stderr
            continue
        assert fetched.code == 0, fetched.stderr
    raise AssertionError("soul fetch kept finding unfinished tasks")


def check_ledger_against_server(fake: Fake302, isolated_dirs: Path) -> None:
    posted = Counter(json.loads(r.body)["prompt"] for r in fake.requests("POST"))
    assert max(posted.values()) == 1, f"sent twice: {posted.most_common(3)}"
    with sqlite3.connect(isolated_dirs / "data" / "tasks.db") as db:
        rows = list(db.execute("SELECT prompt, remote_id, state FROM tasks"))
    recorded = {remote_id: state for _, remote_id, state in rows if remote_id}
    maybe_charged = {prompt for prompt, remote_id, state in rows if state == "outcome_unknown"}
    for task_id, task in fake.state.tasks.items():
        if task_id in recorded:
            assert recorded[task_id] == "completed", (task_id, recorded[task_id])
        else:
            # The stop cut the POST itself: soul never saw the id, and says it may be charged.
            assert task.body["prompt"] in maybe_charged, f"task {task_id} was lost"
