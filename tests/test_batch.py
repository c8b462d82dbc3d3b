"""`soul batch` end to end: validation first, concurrency, resumption without duplicate POSTs."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from soulcli.catalog import resolve_style
from soulcli.fake302 import Fake302
from soulcli.paths import ledger_path
from tests.conftest import run_soul, soul_env, start_soul, wait_until


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_plain_prompts_file_runs_every_line(fake: Fake302, tmp_path: Path, out_dir: Path) -> None:
    prompts = write(tmp_path / "prompts.txt", "a dog\n\n# a comment\na cat\n  a bird  \n")
    result = run_soul("batch", str(prompts), "-o", str(out_dir), "--style", "Tokyo", fake=fake)
    assert result.code == 0, result.stderr
    assert len(result.lines) == 12 and all(Path(p).is_file() for p in result.lines)
    bodies = [json.loads(r.body) for r in fake.requests("POST")]
    assert sorted(b["prompt"] for b in bodies) == ["a bird", "a cat", "a dog"]
    assert {b["style_id"] for b in bodies} == {resolve_style("Tokyo").id}
    assert re.search(r"completed +3$", result.stderr, re.M) and "0.3 PTC" in result.stderr


def test_json_lines_take_per_line_options(fake: Fake302, tmp_path: Path, out_dir: Path) -> None:
    lines = [
        {
            "prompt": "red car",
            "style": "y2k",
            "ar": "16:9",
            "quality": "high",
            "seed": 11,
            "negative": "blur",
            "enhance": True,
            "name": "car",
        },
        {"prompt": "blue boat", "out": str(tmp_path / "boats"), "name": "boat"},
    ]
    batch = write(tmp_path / "b.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    result = run_soul("batch", str(batch), "-o", str(out_dir), "--seed", "5", "--json", fake=fake)
    assert result.code == 0, result.stderr
    records = [json.loads(line) for line in result.lines]
    assert sorted(r["line"] for r in records) == [1, 2]
    bodies = {json.loads(r.body)["prompt"]: json.loads(r.body) for r in fake.requests("POST")}
    assert bodies["red car"] == {
        "quality": "1080p",
        "aspect_ratio": "16:9",
        "prompt": "red car",
        "enhance_prompt": True,
        "seed": 11,
        "style_id": resolve_style("Y2K").id,
        "negative_prompt": "blur",
    }
    assert bodies["blue boat"]["seed"] == 5  # the command line gives the defaults
    assert sorted(p.name for p in out_dir.glob("*.png")) == [f"car_{i}.png" for i in range(1, 5)]
    assert sorted(p.name for p in (tmp_path / "boats").glob("*.png")) == [
        f"boat_{i}.png" for i in range(1, 5)
    ]


def test_a_batch_into_a_full_folder_removes_what_a_killed_run_left(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    import subprocess
    import sys

    out_dir.mkdir()
    for i in range(200):
        (out_dir / f"earlier_{i}.png").write_bytes(b"an earlier image")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])  # like a soul killed by kill -9
    ended.wait()
    left = [f".cat_1.{ended.pid}.0a1b2c3d.part", f".dog_4.{ended.pid}.sidecar.part"]
    running = f".dog_2.{os.getpid()}.0a1b2c3d.part"  # a soul that still runs
    for name in [*left, running]:
        (out_dir / name).write_bytes(b"half an image")
    lines = [{"prompt": f"a {name}", "name": name} for name in ("cat", "dog", "owl")]
    batch = write(tmp_path / "b.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    result = run_soul("batch", str(batch), "-o", str(out_dir), "-c", "3", fake=fake)
    assert result.code == 0, result.stderr
    assert sorted(Path(p).name for p in result.lines) == [
        f"{name}_{i}.png" for name in ("cat", "dog", "owl") for i in range(1, 5)
    ]
    assert sorted(p.name for p in out_dir.glob(".*")) == [running]
    assert len(list(out_dir.glob("*.png"))) == 212 and len(list(out_dir.glob("*.json"))) == 12


def test_every_bad_line_is_reported_before_anything_is_sent(fake: Fake302, tmp_path: Path) -> None:
    good = [json.dumps({"prompt": f"prompt {i}"}) for i in range(1, 57)]
    text = "\n".join(
        [
            *good[:2],
            '{"prompt": "x", "style": "nope-style"}',
            *good[3:5],
            '{"prompt": "y", "colour": "red"}',
            *good[6:56],
            '{"prompt": "broken",',
        ]
    )
    batch = write(tmp_path / "b.jsonl", text + "\n")
    result = run_soul("batch", str(batch), fake=fake)
    assert result.code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("soul: error:")]
    assert f"{batch}:3: unknown style 'nope-style'" in errors[0]
    assert f"{batch}:6: unknown key 'colour'" in errors[1]
    assert f"{batch}:57: not valid JSON" in errors[2]
    assert "3 bad lines" in errors[3] and "nothing was sent" in errors[3]
    assert fake.requests() == []


def test_max_cost_refuses_a_batch_that_costs_more(fake: Fake302, tmp_path: Path) -> None:
    batch = write(tmp_path / "p.txt", "a\nb\nc\n")
    result = run_soul("batch", str(batch), "-q", "1080p", "--max-cost", "0.5", fake=fake)
    assert result.code == 15
    assert "0.6 PTC" in result.stderr and "--max-cost" in result.stderr
    assert fake.requests() == []


def test_confirm_above_applies_to_the_whole_batch(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    run_soul("config", "set", "confirm_above", "0.25", fake=fake)
    batch = write(tmp_path / "p.txt", "a\nb\nc\n")
    refused = run_soul("batch", str(batch), "-o", str(out_dir), fake=fake)
    assert refused.code == 15 and fake.requests() == []
    accepted = run_soul("batch", str(batch), "-o", str(out_dir), "--yes", fake=fake)
    assert accepted.code == 0 and fake.post_count() == 3


def test_rerunning_the_same_file_sends_nothing_again(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    batch = write(tmp_path / "p.txt", "a dog\na cat\n")
    first = run_soul("batch", str(batch), "-o", str(out_dir), fake=fake)
    assert first.code == 0
    again = run_soul("batch", str(batch), "-o", str(out_dir), "--resume", fake=fake)
    assert again.code == 0, again.stderr
    assert sorted(again.lines) == sorted(first.lines)
    assert fake.post_count() == 2
    assert "2 already done" in again.stderr
    other = run_soul("batch", str(batch), "-o", str(out_dir), "-q", "1080p", "--resume", fake=fake)
    assert other.code == 2 and "no earlier run" in other.stderr


def test_killed_batch_resumes_with_zero_duplicate_posts(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    fake.settings.run_seconds = 3.0
    batch = write(tmp_path / "p.txt", "".join(f"prompt {i}\n" for i in range(6)))
    proc = start_soul("batch", str(batch), "-o", str(out_dir), "-c", "3", fake=fake)
    # Three tasks submitted, their ids recorded, and being polled: then kill -9.
    wait_until(lambda: fake.poll_count() >= 3, "polling")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    sent_before = fake.post_count()
    assert sent_before == 3
    fake.settings.run_seconds = 0.3
    resumed = run_soul("batch", str(batch), "-o", str(out_dir), fake=fake)
    assert resumed.code == 0, resumed.stderr
    assert "0 already done, 3 new (0.3 PTC), 3 to resume" in resumed.stderr
    assert fake.post_count() == 6  # every line sent exactly once across both runs
    assert len(resumed.lines) == 24
    assert len({json.loads(r.body)["prompt"] for r in fake.requests("POST")}) == 6


def test_interrupted_batch_exits_130_and_resumes(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    fake.settings.never_finish = True
    batch = write(tmp_path / "p.txt", "one\ntwo\n")
    proc = start_soul("batch", str(batch), "-o", str(out_dir), fake=fake)
    wait_until(lambda: fake.poll_count() >= 2, "polling")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130, stderr
    assert b"run the same command again" in stderr and b"Traceback" not in stderr
    fake.settings.never_finish = False
    resumed = run_soul("batch", str(batch), "-o", str(out_dir), fake=fake)
    assert resumed.code == 0 and fake.post_count() == 2


def test_a_refused_line_fails_the_batch_and_is_sent_again_next_time(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    batch = write(tmp_path / "p.txt", "fine\nrefused\n")
    fake.state.inject("submit", "422")
    result = run_soul("batch", str(batch), "-o", str(out_dir), "-c", "1", fake=fake)
    assert result.code == 16
    assert "line 1 failed" in result.stderr
    retry = run_soul("batch", str(batch), "-o", str(out_dir), fake=fake)
    assert retry.code == 0, retry.stderr
    assert "1 already done, 1 new (0.1 PTC)" in retry.stderr  # refused: never charged, send it
    assert fake.post_count() == 3


def test_rate_limits_slow_the_batch_instead_of_failing_it(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    fake.state.inject("submit", *["429"] * 4)
    batch = write(tmp_path / "p.txt", "".join(f"p{i}\n" for i in range(5)))
    result = run_soul("batch", str(batch), "-o", str(out_dir), "-c", "4", fake=fake)
    assert result.code == 0, result.stderr
    assert len(fake.state.tasks) == 5 and fake.post_count() == 9


def test_tasks_run_concurrently(fake: Fake302, tmp_path: Path, out_dir: Path) -> None:
    fake.settings.run_seconds = 1.5
    batch = write(tmp_path / "p.txt", "".join(f"p{i}\n" for i in range(4)))
    result = run_soul("batch", str(batch), "-o", str(out_dir), "-c", "4", fake=fake)
    assert result.code == 0
    posts = sorted(r.at for r in fake.requests("POST"))
    assert posts[-1] - posts[0] < 1.0  # all four were in flight together, not one by one


def test_plain_logs_when_stderr_is_not_a_terminal(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    batch = write(tmp_path / "p.txt", "a\nb\n")
    result = run_soul("batch", str(batch), "-o", str(out_dir), fake=fake)
    events = [line for line in result.stderr.splitlines() if line.startswith("soul: line")]
    assert sum("submitted task" in e for e in events) == 2
    assert sum(e.endswith("completed") for e in events) == 2
    assert "\r" not in result.stderr


def test_killed_between_post_and_answer_is_never_resent(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    batch = write(tmp_path / "p.txt", "only line\n")
    proc = start_soul("batch", str(batch), "-o", str(out_dir), fake=fake)
    # The server has the request (and would charge it); soul dies before the answer.
    fake.state.on_submit = lambda body: proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    fake.state.on_submit = None
    assert fake.post_count() == 1
    again = run_soul("batch", str(batch), "-o", str(out_dir), fake=fake)
    assert again.code == 16
    assert "outcome_unknown" in again.stderr and "may have been charged" in again.stderr
    assert fake.post_count() == 1


def test_soul_fetch_finishes_a_batch_line_under_its_name(
    fake: Fake302, tmp_path: Path, out_dir: Path
) -> None:
    fake.settings.never_finish = True
    batch = write(tmp_path / "b.jsonl", '{"prompt": "a kite", "name": "kite"}\n')
    proc = start_soul("batch", str(batch), "-o", str(out_dir), fake=fake)
    wait_until(lambda: fake.poll_count() >= 1, "polling")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    fake.settings.never_finish = False
    resumed = run_soul("fetch", fake=fake)
    assert resumed.code == 0, resumed.stderr
    assert [Path(p).name for p in resumed.lines] == [f"kite_{i}.png" for i in range(1, 5)]
    assert fake.post_count() == 1


def test_dry_run_prints_every_body_and_the_total_and_needs_no_key(
    fake: Fake302, tmp_path: Path
) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        '{"prompt": "a dog", "style": "Tokyo", "seed": 7}\n'
        '{"prompt": "a cat", "quality": "1080p", "name": "cat", "out": "cats"}\n'
    )
    env = soul_env(None)  # no key, and the fake's URL only to show nothing reaches it
    env["SOUL_BASE_URL"] = fake.base_url
    result = run_soul("batch", str(prompts), "--dry-run", env=env, cwd=tmp_path)
    assert result.code == 0, result.stderr
    bodies = [json.loads(line) for line in result.lines]
    assert [b["prompt"] for b in bodies] == ["a dog", "a cat"]
    assert bodies[0]["seed"] == 7 and bodies[0]["style_id"] == resolve_style("Tokyo").id
    assert bodies[1]["quality"] == "1080p"
    assert set(bodies[0]) == {
        "prompt",
        "style_id",
        "aspect_ratio",
        "quality",
        "seed",
        "negative_prompt",
        "enhance_prompt",
    }
    assert "2 new (0.3 PTC); nothing was sent" in result.stderr
    assert fake.requests() == [] and not (tmp_path / "cats").exists()
    assert not ledger_path().exists()  # a dry run leaves nothing behind either

    as_json = run_soul("batch", str(prompts), "--dry-run", "--json", env=env, cwd=tmp_path)
    lines = [json.loads(line) for line in as_json.lines]
    assert [line["line"] for line in lines] == [1, 2]
    assert lines[1]["cost_ptc"] == 0.2 and lines[1]["name"] == "cat"
    assert lines[1]["out_dir"] == str((tmp_path / "cats").resolve())
    assert lines[0]["url"] == fake.base_url + "/higgsfield/text2image_soul"
    assert lines[0]["method"] == "POST" and lines[0]["body"] == bodies[0]
    assert fake.requests() == []


def test_dry_run_of_a_bad_file_reports_every_bad_line(fake: Fake302, tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a"}\n{"prompt": "b", "ar": "5:4"}\n')
    result = run_soul("batch", str(tmp_path / "bad.jsonl"), "--dry-run", fake=fake)
    assert result.code == 2 and result.stdout == ""
    assert "bad.jsonl:2:" in result.stderr and fake.requests() == []


@pytest.mark.parametrize("width", [40, 60, 120])
def test_the_batch_headline_keeps_progress_time_and_spend_at_any_width(width: int) -> None:
    from decimal import Decimal

    from soulcli.commands.batch_progress import BatchProgress

    progress = BatchProgress(100, already_done=99, live=False)
    progress.finished(7, "completed", "")
    progress.spent = Decimal("19.8")
    progress.began -= 725  # 12m05s ago
    line = progress.headline(width).plain
    assert len(line) <= width
    assert "100" in line and "12m05s" in line and "19.8 PTC" in line and "…" not in line


def test_dry_run_after_a_run_prices_only_what_would_be_sent(fake: Fake302, tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("a dog\na cat\n")
    out = str(tmp_path / "out")
    assert run_soul("batch", str(prompts), "-o", out, fake=fake).code == 0
    prompts.write_text("a dog\na cat\na bird\n")
    posts = fake.post_count()
    result = run_soul("batch", str(prompts), "-o", out, "--dry-run", fake=fake)
    assert result.code == 0, result.stderr
    assert [json.loads(line)["prompt"] for line in result.lines] == ["a bird"]
    assert "2 already done, 1 new (0.1 PTC); nothing was sent" in result.stderr
    again = run_soul("batch", str(prompts), "-o", out, "--dry-run", "--again", fake=fake)
    assert len(again.lines) == 3 and "3 new (0.3 PTC)" in again.stderr
    assert fake.post_count() == posts


def test_an_output_folder_under_a_file_stops_the_batch_before_anything_is_sent(
    fake: Fake302, tmp_path: Path
) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    batch = tmp_path / "prompts.txt"
    batch.write_text("a red kite\na fox in snow\n")
    result = run_soul("batch", str(batch), "-o", str(blocker / "pics"), fake=fake)
    assert result.code == 14
    assert result.stderr.endswith(
        f"soul: error: cannot create output directory {blocker / 'pics'}: Not a directory; "
        "nothing was sent\n"
    )
    assert result.stdout == "" and fake.requests() == []
