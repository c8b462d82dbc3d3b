"""soul in real shell pipelines: stdout carries only data, so jq, head and < compose."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from soulcli.fake302 import Fake302
from tests.conftest import SENTINEL_KEY, SOUL, run_soul, soul_env

pytestmark = pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")


def shell(script: str, fake: Fake302 | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = soul_env(fake, PATH=f"{SOUL.parent}:/usr/bin:/bin")
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert SENTINEL_KEY not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def test_styles_json_through_jq_and_head(tmp_path: Path) -> None:
    proc = shell("soul styles --json | jq -r '.[].name' | head -3", None, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["GENERAL", "iPhone", "Realistic"]


def test_batch_from_stdin_streams_json_lines_to_jq(fake: Fake302, tmp_path: Path) -> None:
    (tmp_path / "prompts.txt").write_text("a dog\na cat\n")
    proc = shell(
        "cat prompts.txt | soul batch - --json -o out | jq -r '.images[].path'", fake, tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    paths = proc.stdout.splitlines()
    assert len(paths) == 8 and all(Path(p).is_file() for p in paths)


def test_generate_reads_the_prompt_from_a_redirect(fake: Fake302, tmp_path: Path) -> None:
    (tmp_path / "prompt.txt").write_text("a lighthouse in fog\n")
    proc = shell("soul generate - -o out < prompt.txt | xargs -n1 basename", fake, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 4
    assert json.loads(fake.requests("POST")[0].body)["prompt"] == "a lighthouse in fog"


def test_json_output_of_generate_feeds_jq(fake: Fake302, tmp_path: Path) -> None:
    proc = shell(
        "soul generate 'a red kite' --json -o out | jq -r '.task_id, .cost_ptc'", fake, tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    task_id, cost = proc.stdout.split()
    assert task_id.startswith("higgsfield_") and cost == "0.1"


def test_styles_piped_to_head_exits_quietly(tmp_path: Path) -> None:
    proc = shell('soul styles | head -1; echo "soul exited ${PIPESTATUS[0]}" >&2', None, tmp_path)
    assert proc.stdout.startswith("NAME")
    # The whole list fits in the pipe's buffer, so soul may finish before head goes away
    # (0), or write after it went (141, like a tool killed by SIGPIPE); silent either way.
    # The price line is talk, on stderr, and says nothing about the pipe.
    talk = [line for line in proc.stderr.splitlines() if not line.startswith("Price per")]
    assert talk in (["soul exited 0"], ["soul exited 141"])


def test_a_reader_that_went_away_ends_soul_quietly_with_141(tmp_path: Path) -> None:
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before soul writes its first line
    try:
        proc = subprocess.run(
            [str(SOUL), "styles"], stdout=write_end, stderr=subprocess.PIPE, timeout=60
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and proc.stderr == b""


def test_a_batch_whose_reader_goes_away_keeps_every_task(
    fake: Fake302, tmp_path: Path, isolated_dirs: Path
) -> None:
    import sqlite3

    fake.settings.submit_delay = 1.0  # other lines are mid-POST when the reader leaves
    (tmp_path / "p.txt").write_text("".join(f"pipe line {i}\n" for i in range(8)))
    proc = shell(
        'soul batch p.txt -o out -c 4 --json | head -c 1 >/dev/null; echo "soul ${PIPESTATUS[0]}"',
        fake,
        tmp_path,
    )
    assert proc.stdout.strip() == "soul 141"
    assert "closed" not in proc.stderr and "error" not in proc.stderr
    with sqlite3.connect(isolated_dirs / "data" / "tasks.db") as db:
        rows = dict(db.execute("SELECT remote_id, state FROM tasks"))
    assert set(fake.state.tasks) <= set(rows)  # every task the server made is in the ledger
    assert set(rows.values()) <= {"completed", "submitted"}
    again = shell("soul batch p.txt -o out --json", fake, tmp_path)  # resumes, sends the rest
    assert again.returncode == 0, again.stderr
    assert fake.post_count() == 8


def test_piped_history_is_plain_aligned_columns_with_the_totals_on_stderr(
    fake: Fake302, tmp_path: Path
) -> None:
    for prompt in ["a dog", "a cat in a very long hat with a feather"]:
        assert run_soul("generate", prompt, "-o", str(tmp_path), fake=fake).code == 0
    proc = shell("soul history | cat", fake, tmp_path)
    lines = proc.stdout.splitlines()
    assert lines[0].split() == [
        "#",
        "WHEN",
        "STATE",
        "STYLE",
        "QUALITY",
        "RATIO",
        "SEED",
        "COST",
        "IMAGES",
        "PROMPT",
    ]
    assert len(lines) == 3 and lines[1].endswith("a cat in a very long hat with a feather")
    assert all(line == line.rstrip() for line in lines)
    assert not any(char in proc.stdout for char in "│─┃━┏┗")
    prompt_column = lines[0].index("PROMPT")  # aligned: every prompt starts there
    assert [line[prompt_column:] for line in lines[1:]] == [
        "a cat in a very long hat with a feather",
        "a dog",
    ]
    assert proc.stderr == "2 tasks · spent 0.2 PTC\n"
