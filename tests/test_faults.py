"""Server and network faults through the real CLI: never pay twice, never lose a task id."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from soulcli.fake302 import Fake302
from tests.conftest import free_port, run_soul, soul_env, start_soul, wait_until


def test_connection_refused_is_unreachable_and_nothing_was_sent(out_dir: Path) -> None:
    env = soul_env(
        None, SOUL_BASE_URL=f"http://127.0.0.1:{free_port()}", SOUL_API_KEY="sk-test-refused-0000"
    )
    result = run_soul("generate", "a dog", "-o", str(out_dir), env=env)
    assert result.code == 8
    assert "nothing was sent" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_key_is_refused_with_a_hint(fake: Fake302, out_dir: Path) -> None:
    env = soul_env(fake, SOUL_API_KEY="sk-wrong-key-000000")
    result = run_soul("generate", "a dog", "-o", str(out_dir), env=env)
    assert result.code == 4
    assert "soul config get api_key" in result.stderr
    assert "sk-wrong-key-000000" not in result.stderr


def test_missing_key_says_how_to_set_it_and_sends_nothing(fake: Fake302, out_dir: Path) -> None:
    env = soul_env(fake)
    del env["SOUL_API_KEY"]
    result = run_soul("generate", "a dog", "-o", str(out_dir), env=env)
    assert result.code == 3
    assert "soul config set api_key" in result.stderr
    assert fake.requests() == []


def test_plain_http_base_url_is_refused_unless_loopback(fake: Fake302, out_dir: Path) -> None:
    env = soul_env(fake, SOUL_BASE_URL="http://api.302.ai")
    result = run_soul("generate", "a dog", "-o", str(out_dir), env=env)
    assert result.code == 3
    assert "https" in result.stderr
    assert fake.requests() == []


def test_unknown_task_is_not_found(fake: Fake302) -> None:
    result = run_soul("fetch", "higgsfield_doesnotexist", fake=fake)
    assert result.code == 7
    assert "higgsfield_doesnotexist" in result.stderr
    assert fake.post_count() == 0


def test_truncated_image_is_retried_and_leaves_no_partial_file(
    fake: Fake302, out_dir: Path
) -> None:
    fake.state.inject("image", "truncate", "cut")
    result = run_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    assert result.code == 0, result.stderr
    files = sorted(out_dir.iterdir())
    assert [f.suffix for f in files] == [".json", ".png"] * 4


def test_image_that_never_arrives_whole_fails_cleanly(fake: Fake302, out_dir: Path) -> None:
    fake.settings.outcomes = ["completed", "failed", "failed", "failed"]
    fake.state.inject("image", "truncate", "cut", "html", "truncate", "cut", "html")
    result = run_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    assert result.code == 14
    assert list(out_dir.iterdir()) == []  # no partial file, no temp file
    assert "image 1" in result.stderr and "download failed" in result.stderr
    assert "soul fetch" in result.stderr


@pytest.mark.parametrize(("how", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_waiting_prints_the_task_id_and_resume_command(
    fake: Fake302, out_dir: Path, how: int, code: int
) -> None:
    fake.settings.never_finish = True
    proc = start_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    wait_until(lambda: fake.poll_count() > 0, "polling")
    proc.send_signal(how)
    stdout, stderr = proc.communicate(timeout=20)
    text = stderr.decode()
    assert proc.returncode == code
    task_id = next(iter(fake.state.tasks))
    assert f"soul fetch {task_id} --wait --out {out_dir.resolve()}" in text
    assert "Traceback" not in text and stdout == b""
    assert fake.post_count() == 1
