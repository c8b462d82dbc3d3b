"""The fault matrix: every submit, poll, download and signal fault through the real CLI.

For each case: how many POSTs the fake received, the exit code, the ledger state,
and the message. Nothing may be lost, sent twice, or left half-written.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from soulcli.fake302 import Fake302, FakeSettings
from tests.conftest import (
    SENTINEL_KEY,
    free_port,
    run_soul,
    soul_env,
    start_soul,
    wait_until,
)


def ledger_states(isolated_dirs: Path) -> list[str]:
    path = isolated_dirs / "data" / "tasks.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT state FROM tasks ORDER BY id")]


def leftovers(directory: Path) -> list[str]:
    """Anything in an output dir that is not a finished image or its sidecar."""
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if p.suffix not in (".png", ".json"))


# fault, Retry-After, POSTs, exit code, ledger state, words in stderr
SUBMIT_MATRIX: list[tuple[str, str | None, int, int, str, str]] = [
    ("429", "0", 2, 0, "completed", ""),
    ("429", "-5", 2, 0, "completed", ""),
    ("429", "soon-ish", 2, 0, "completed", ""),
    ("429", "HTTP-DATE", 2, 0, "completed", ""),
    ("500", None, 1, 10, "outcome_unknown", "may have been charged"),
    ("502", None, 1, 10, "outcome_unknown", "may have been charged"),
    ("503", None, 1, 10, "outcome_unknown", "may have been charged"),
    ("drop", None, 1, 10, "outcome_unknown", "may have been charged"),
    ("hang", None, 1, 10, "outcome_unknown", "may have been charged"),
    ("html", None, 1, 10, "outcome_unknown", "may have been charged"),
    ("no_id", None, 1, 10, "outcome_unknown", "no task id"),
    ("401", None, 1, 4, "failed", "API key was refused"),
    ("402", None, 1, 5, "failed", "cannot pay"),
    ("403", None, 1, 5, "failed", "cannot pay"),
    ("422", None, 1, 6, "failed", "rejected the request"),
]


@pytest.mark.parametrize(("fault", "retry_after", "posts", "code", "state", "words"), SUBMIT_MATRIX)
def test_submit_fault(
    fake: Fake302,
    isolated_dirs: Path,
    out_dir: Path,
    fault: str,
    retry_after: str | None,
    posts: int,
    code: int,
    state: str,
    words: str,
) -> None:
    if retry_after == "HTTP-DATE":
        retry_after = formatdate(time.time() + 1, usegmt=True)
    fake.settings.retry_after = retry_after
    fake.settings.hang_seconds = 2.0
    fake.settings.fault_message = "Server says \x1b[2Jno\x1b]0;pwned\x07 way"
    fake.state.inject("submit", fault)
    env = soul_env(fake, SOUL_HTTP_TIMEOUT="0.5")
    result = run_soul("generate", "a dog", "-o", str(out_dir), env=env)
    time.sleep(0.05)
    assert fake.post_count() == posts
    assert result.code == code, result.stderr
    assert ledger_states(isolated_dirs) == [state]
    assert words in result.stderr
    if code:
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1
        if fault in ("401", "402", "403", "422"):
            assert "Server says no way" in errors[0]  # escape sequences removed
    assert leftovers(out_dir) == []


def test_connection_refused_is_retried_and_makes_one_task(
    isolated_dirs: Path, out_dir: Path
) -> None:
    port = free_port()
    settings = FakeSettings(api_key=SENTINEL_KEY, queue_seconds=0.1, run_seconds=0.2)
    fake = Fake302(settings, port=port)
    starter = threading.Timer(0.4, fake.start)  # the API comes up while soul retries
    starter.start()
    try:
        env = soul_env(None, SOUL_BASE_URL=f"http://127.0.0.1:{port}", SOUL_API_KEY=SENTINEL_KEY)
        result = run_soul("generate", "a dog", "-o", str(out_dir), env=env)
        starter.join()
        assert result.code == 0, result.stderr
        assert fake.post_count() == 1 and len(fake.state.tasks) == 1
        assert ledger_states(isolated_dirs) == ["completed"]
    finally:
        starter.join()
        fake.stop()


def test_connect_timeout_is_unreachable_and_nothing_was_sent(
    isolated_dirs: Path, out_dir: Path
) -> None:
    # A listener whose accept queue is full drops new SYNs: connecting times out.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(server.getsockname())
        fillers.append(filler)
    try:
        port = server.getsockname()[1]
        env = soul_env(
            None,
            SOUL_BASE_URL=f"http://127.0.0.1:{port}",
            SOUL_API_KEY=SENTINEL_KEY,
            SOUL_HTTP_TIMEOUT="0.3",
        )
        result = run_soul("generate", "a dog", "-o", str(out_dir), env=env)
        assert result.code == 8, result.stderr
        assert "nothing was sent" in result.stderr
        assert ledger_states(isolated_dirs) == ["failed"]
    finally:
        for filler in fillers:
            filler.close()
        server.close()


POLL_MATRIX = [
    ["500", "500", "500"],
    ["502", "503", "500", "502"],
    ["429", "429"],
    ["html", "html"],
    ["truncated"],
    ["drop"],
    ["shrink", "shrink"],
    ["unknown_status", "unknown_status"],
    ["regress"],
]


@pytest.mark.parametrize("faults", POLL_MATRIX, ids=lambda f: "+".join(f))
def test_poll_faults_end_in_four_images(
    fake: Fake302, isolated_dirs: Path, out_dir: Path, faults: list[str]
) -> None:
    fake.settings.run_seconds = 0.1
    fake.settings.queue_seconds = 0.0
    # Let the task finish first, so every injected answer lands on a finished task.
    fake.state.on_submit = lambda body: fake.state.inject("poll", *faults)
    result = run_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    assert result.code == 0, result.stderr
    assert len(result.lines) == 4
    assert fake.post_count() == 1 and fake.poll_count() >= len(faults) + 1
    assert ledger_states(isolated_dirs) == ["completed"]


def test_poll_404_keeps_the_task_resumable(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    fake.state.on_submit = lambda body: fake.state.inject("poll", "404")
    result = run_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    assert result.code == 7
    task_id = next(iter(fake.state.tasks))
    assert task_id in result.stderr
    assert ledger_states(isolated_dirs) == ["submitted"]
    resumed = run_soul("fetch", fake=fake)
    assert resumed.code == 0 and len(resumed.lines) == 4 and fake.post_count() == 1


def test_task_that_never_finishes_times_out_resumably(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    fake.settings.never_finish = True
    result = run_soul("generate", "a dog", "--timeout", "1", "-o", str(out_dir), fake=fake)
    assert result.code == 11
    assert ledger_states(isolated_dirs) == ["timed_out"]
    assert leftovers(out_dir) == [] and fake.post_count() == 1


def generate_json(fake: Fake302, out_dir: Path) -> tuple[int, dict[str, Any], str]:
    result = run_soul("generate", "a dog", "--json", "-o", str(out_dir), fake=fake)
    payload = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.code, payload, result.stderr


def test_redirect_to_another_host_is_followed_without_the_key(fake: Fake302, out_dir: Path) -> None:
    fake.state.inject("image", "redirect")
    code, payload, stderr = generate_json(fake, out_dir)
    assert code == 0, stderr
    assert len(payload["images"]) == 4
    hosts = {r.headers.get("host", "").split(":")[0] for r in fake.requests(server="images")}
    assert hosts == {"127.0.0.1", "localhost"}
    assert all("authorization" not in r.headers for r in fake.requests(server="images"))


def test_redirect_to_plain_http_is_refused_and_min_is_used(fake: Fake302, out_dir: Path) -> None:
    fake.state.inject("image", "redirect_http")
    code, payload, stderr = generate_json(fake, out_dir)
    assert code == 0, stderr
    urls = sorted(image["url"] for image in payload["images"])
    assert sum(url.endswith("/min.png") for url in urls) == 1  # that one fell back to min


def test_non_https_image_urls_are_refused(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    fake.settings.image_url_base = "http://cdn.example.test"
    result = run_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    assert result.code == 14
    assert "non-https" in result.stderr
    assert fake.requests(server="images") == []
    assert ledger_states(isolated_dirs) == ["submitted"]  # resumable once URLs are usable
    assert leftovers(out_dir) == [] and list(out_dir.glob("*.png")) == []


def test_oversized_image_is_cut_off_while_streaming(fake: Fake302, out_dir: Path) -> None:
    fake.settings.image_size = 60 * 1024 * 1024  # the full image only; the preview is small
    fake.settings.outcomes = ["completed", "failed", "failed", "failed"]
    result = run_soul("generate", "a dog", "--json", "-o", str(out_dir), fake=fake, timeout=120)
    assert result.code == 12, result.stderr
    assert "larger than" in result.stderr or "too large" in result.stderr
    assert "smaller preview" in result.stderr  # said, and recorded in the JSON
    assert [i["variant"] for i in json.loads(result.stdout)["images"]] == ["min"]
    assert leftovers(out_dir) == [] and len(list(out_dir.glob("*.png"))) == 1


@pytest.fixture
def small_fs(tmpfs: Callable[[str, str], Path]) -> Path:
    """A 96 KiB tmpfs: writing four images to it runs out of space (real ENOSPC)."""
    return tmpfs("small", "size=96k")


def test_disk_full_leaves_no_partial_file(
    fake: Fake302, isolated_dirs: Path, small_fs: Path
) -> None:
    fake.settings.image_size = 40 * 1024
    result = run_soul("generate", "a dog", "-o", str(small_fs), fake=fake)
    assert result.code == 14
    assert "No space left" in result.stderr
    assert leftovers(small_fs) == []
    for image in small_fs.glob("*.png"):
        assert image.stat().st_size == 40 * 1024  # whatever was saved is whole
    assert ledger_states(isolated_dirs) == ["submitted"]


def test_read_only_output_dir_is_refused_before_paying(
    fake: Fake302, tmpfs: Callable[[str, str], Path]
) -> None:
    read_only = tmpfs("ro", "ro,size=16k")
    result = run_soul("generate", "a dog", "-o", str(read_only), fake=fake)
    assert result.code == 14 and "not writable" in result.stderr
    assert fake.requests() == []


@pytest.mark.parametrize(("how", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_submit_is_recorded_as_maybe_charged(
    fake: Fake302, isolated_dirs: Path, out_dir: Path, how: int, code: int
) -> None:
    fake.settings.hang_seconds = 3.0
    fake.state.inject("submit", "hang")
    proc = start_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    wait_until(lambda: fake.post_count() == 1, "soul never posted")
    time.sleep(0.1)
    proc.send_signal(how)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == code
    assert b"may have been charged" in stderr and b"Traceback" not in stderr
    assert ledger_states(isolated_dirs) == ["outcome_unknown"]
    assert fake.post_count() == 1


@pytest.mark.parametrize(("how", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_download_leaves_nothing_half_written(
    fake: Fake302, isolated_dirs: Path, out_dir: Path, how: int, code: int
) -> None:
    fake.settings.image_size = 2 * 1024 * 1024
    fake.settings.bandwidth = 256 * 1024
    proc = start_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    wait_until(lambda: len(fake.requests(server="images")) == 4, "downloads never started")
    time.sleep(0.5)
    proc.send_signal(how)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert b"soul fetch" in stderr
    assert leftovers(out_dir) == [] and list(out_dir.glob("*.png")) == []
    assert ledger_states(isolated_dirs) == ["submitted"]
    fake.settings.bandwidth = None
    resumed = run_soul("fetch", fake=fake)
    assert resumed.code == 0 and len(resumed.lines) == 4 and fake.post_count() == 1


def test_sigkill_during_download_then_fetch_cleans_up_and_finishes(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    fake.settings.image_size = 2 * 1024 * 1024
    fake.settings.bandwidth = 256 * 1024
    proc = start_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    wait_until(lambda: len(list(out_dir.glob(".*.part"))) == 4, "no temp files appeared")
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=20)
    assert len(leftovers(out_dir)) == 4  # a killed process cannot clean up...
    fake.settings.bandwidth = None
    resumed = run_soul("fetch", fake=fake)
    assert resumed.code == 0, resumed.stderr
    assert leftovers(out_dir) == []  # ...but the next run does
    assert len(list(out_dir.glob("*.png"))) == 4 and fake.post_count() == 1
    assert os.path.getsize(resumed.lines[0]) == 2 * 1024 * 1024
