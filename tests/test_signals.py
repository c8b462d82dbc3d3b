"""Ctrl-C and SIGTERM anywhere: one line on stderr, exit 130 or 143, the task id once it exists."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from soulcli.fake302 import Fake302
from tests.conftest import SOUL, run_soul, soul_env, wait_for_soul_code, wait_until

CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}
WORDS: dict[int, str] = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


def start(
    *args: str,
    fake: Fake302 | None = None,
    before: Callable[[], object] | None = None,
    **env: str,
) -> subprocess.Popen[bytes]:
    """Start soul with a stdin it can wait on; `before` runs in the child before soul."""
    return subprocess.Popen(
        [str(SOUL), *args],
        env=soul_env(fake, **env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=before,
    )


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    stdout, stderr = proc.communicate(timeout=30)
    text = stderr.decode()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    return proc.returncode, stdout.decode(), text


def ledger_rows(isolated_dirs: Path) -> list[tuple[str, str | None, str | None]]:
    path = isolated_dirs / "data" / "tasks.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return list(db.execute("SELECT state, remote_id, error FROM tasks ORDER BY id"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_soul_is_still_loading(how: int) -> None:
    for _ in range(3):
        proc = start("styles", "--search", "y2k")
        # The moment soul's first code runs, it handles SIGTERM; the imports follow.
        wait_for_soul_code(proc)
        proc.send_signal(how)
        code, _, stderr = finish(proc)
        if code == 0:  # it finished loading and printing first: nothing to check this time
            continue
        assert code == CODES[how]
        assert stderr == f"soul: error: {WORDS[how]}\n"
        return
    pytest.fail("soul always finished before the signal arrived")


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_reading_the_prompt_from_stdin(fake: Fake302, how: int) -> None:
    proc = start("generate", "-", fake=fake)
    wait_for_soul_code(proc)
    time.sleep(0.5)  # loaded, parsed, and now blocked reading stdin
    proc.send_signal(how)
    code, stdout, stderr = finish(proc)
    assert code == CODES[how]
    assert stderr == f"soul: error: {WORDS[how]}\n" and stdout == ""
    assert fake.requests() == []


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_right_after_the_submit_names_the_task(
    fake: Fake302, isolated_dirs: Path, out_dir: Path, how: int
) -> None:
    proc = start("generate", "a dog", "-o", str(out_dir), fake=fake, SOUL_POLL_SCALE="1")
    assert proc.stderr is not None
    while b"submitted" not in (line := proc.stderr.readline()):
        assert line, "soul ended before submitting"
    proc.send_signal(how)  # the first poll is a second away
    code, _, stderr = finish(proc)
    task_id = next(iter(fake.state.tasks))
    assert code == CODES[how]
    errors = [line for line in stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and task_id in errors[0]
    assert f"soul fetch {task_id} --wait --out {out_dir.resolve()}" in errors[0]
    assert ledger_rows(isolated_dirs) == [("submitted", task_id, None)]
    assert fake.post_count() == 1


def test_ctrl_c_during_a_429_back_off_is_not_charged(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    fake.settings.retry_after = "20"
    fake.state.inject("submit", "429")
    proc = start("generate", "a dog", "-o", str(out_dir), fake=fake)
    wait_until(lambda: fake.post_count() == 1, "the first POST")
    time.sleep(0.3)  # the 429 came back; soul is waiting to try again
    proc.send_signal(signal.SIGINT)
    code, _, stderr = finish(proc)
    assert code == 130
    assert "nothing was charged" in stderr and "may have been charged" not in stderr
    [(state, remote_id, error)] = ledger_rows(isolated_dirs)
    assert state == "failed" and remote_id is None and str(error).startswith("not submitted")
    history = run_soul("history", "--json", fake=fake)
    assert json.loads(history.stdout)[0]["state"] == "failed"
    assert "possibly charged" not in run_soul("history", fake=fake).stdout
    assert fake.state.tasks == {}


def test_ctrl_c_at_any_moment_of_a_generate(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    """Whenever it lands: one error line, 130, and a task the server made is never lost."""
    fake.settings.image_size = 512 * 1024
    fake.settings.bandwidth = 2 * 1024 * 1024
    rng = random.Random(8)
    for attempt in range(12):
        tasks_before = set(fake.state.tasks)
        target = out_dir / str(attempt)
        proc = start("generate", f"a dog {attempt}", "-o", str(target), fake=fake)
        time.sleep(rng.uniform(0.0, 2.0))
        proc.send_signal(signal.SIGINT)
        code, stdout, stderr = finish(proc)
        new_tasks = set(fake.state.tasks) - tasks_before
        errors = [line for line in stderr.splitlines() if line.startswith("soul: error:")]
        if code == 0:
            assert errors == [] and len(stdout.splitlines()) == 4
            continue
        assert code == 130, stderr
        assert len(errors) == 1, stderr
        rows = ledger_rows(isolated_dirs)
        recorded = {remote_id for _, remote_id, _ in rows}
        for task_id in new_tasks:
            # Either soul knows the id (in the ledger and in its last line), or the signal
            # cut the POST itself and the row says the request may have been charged.
            if task_id in recorded:
                assert task_id in errors[0] and "soul fetch" in errors[0]
            else:
                assert rows[-1][0] == "outcome_unknown" and "may have been charged" in errors[0]
        if target.exists():
            assert [p.name for p in target.iterdir() if p.suffix not in (".png", ".json")] == []


def test_signals_blocked_by_the_parent_still_stop_soul(fake: Fake302) -> None:
    def block() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

    proc = start("generate", "-", fake=fake, before=block)
    wait_for_soul_code(proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    code, _, stderr = finish(proc)
    assert code == 130 and stderr == "soul: error: interrupted\n"


def test_an_ignored_sigint_stays_ignored(fake: Fake302) -> None:
    """A background job of a script starts with SIGINT ignored; soul leaves it so."""
    proc = start(
        "generate", "-", fake=fake, before=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)
    )
    wait_for_soul_code(proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert proc.poll() is None  # still reading its prompt
    proc.send_signal(signal.SIGTERM)
    code, _, stderr = finish(proc)
    assert code == 143 and stderr == "soul: error: terminated\n"


@pytest.fixture
def soul_handlers() -> Iterator[None]:
    """soul's own signal handlers in this test process, put back afterwards."""
    from soulcli import signals as soul_signals

    stops = (signal.SIGINT, signal.SIGTERM)
    before = {signum: signal.getsignal(signum) for signum in stops}
    soul_signals.install()
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


def submit_with_a_stop_inside(
    fake: Fake302, isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> tuple[BaseException, Any]:
    """Submit in-process, with Ctrl-C pressed inside the function named by `where`."""
    from soulcli import client as client_module
    from soulcli import submit as submit_module
    from soulcli.client import ApiClient
    from soulcli.ledger import Ledger
    from soulcli.request_builder import build_request

    module, name = {
        "reading the task id": (client_module, "extract_task_id"),
        "before recording it": (submit_module, "resume_command"),
    }[where]
    real = getattr(module, name)

    def pressed_now(*args: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args)

    monkeypatch.setattr(module, name, pressed_now)
    request = build_request(
        "a cat", style=None, ar=None, quality=None, seed=None, negative=None, enhance=None
    )
    with ApiClient(fake.base_url, fake.settings.api_key) as api, Ledger.open() as ledger:
        with pytest.raises(BaseException) as caught:
            submit_module.submit_recorded(
                api, ledger, request, out_dir=str(isolated_dirs), api_host="x", line_key="k:1"
            )
        return caught.value, ledger.get(1)


@pytest.mark.parametrize("where", ["reading the task id", "before recording it"])
def test_ctrl_c_once_the_answer_is_in_keeps_the_task_id(
    fake: Fake302,
    isolated_dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
    soul_handlers: None,
    where: str,
) -> None:
    from soulcli.errors import TaskStoppedError

    error, row = submit_with_a_stop_inside(fake, isolated_dirs, monkeypatch, where)
    task_id = next(iter(fake.state.tasks))
    assert isinstance(error, TaskStoppedError) and error.exit_code == 130
    assert task_id in error.message and f"soul fetch {task_id}" in str(error.hint)
    assert (row.state, row.remote_id) == ("submitted", task_id)
    assert "nothing was charged" not in error.message


def test_a_second_ctrl_c_names_the_ids_other_threads_are_recording() -> None:
    """A batch worker holds a fresh task id while a second Ctrl-C stops soul at once."""
    script = """
import os, signal, threading, time
from soulcli import signals
signals.install()
recording = threading.Event()
def worker():
    with signals.held() as held:
        held.last_words = "task higgsfield_w1 was submitted; get its images with: soul fetch"
        recording.set()
        time.sleep(30)
threading.Thread(target=worker, daemon=True).start()
recording.wait()
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1)
except BaseException:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
"""
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 130
    assert proc.stderr.startswith("soul: error: interrupted again; stopped at once")
    assert "task higgsfield_w1 was submitted" in proc.stderr


def test_ctrl_c_while_an_error_is_reported_keeps_that_error(
    fake: Fake302, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its words may be the only place a task id is said: they are printed, then the stop."""
    from soulcli import signals as soul_signals
    from tests.conftest import invoke

    real_block = soul_signals.block
    pressed: list[bool] = []

    def block_after_a_ctrl_c() -> None:
        if not pressed:
            pressed.append(True)
            os.kill(os.getpid(), signal.SIGINT)  # lands while the error is being reported
        real_block()

    monkeypatch.setattr(soul_signals, "block", block_after_a_ctrl_c)
    result = invoke("fetch")  # nothing to resume: an error with a message to report
    assert result.code == 130
    assert result.stderr.count("soul: error:") == 1
    assert "no unfinished task to resume" in result.stderr and "then interrupted" in result.stderr
