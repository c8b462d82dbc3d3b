"""Shared fixtures: isolated config and data dirs, a fake 302.AI, and ways to run soul."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from soulcli.fake302 import Fake302, FakeSettings

# A sentinel key: no test output and no file but the config file may ever contain it.
SENTINEL_KEY = "sk-SENTINEL0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH"
SOUL = Path(sys.executable).with_name("soul")


@pytest.fixture(autouse=True)
def key_stays_home(tmp_path: Path) -> Iterator[None]:
    """After every test: the sentinel key is in no file but the config file itself."""
    yield
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.name != "config.toml":
            with path.open("rb") as handle:
                assert SENTINEL_KEY.encode() not in handle.read(), f"the key leaked into {path}"


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every path soul uses at a fresh temp dir and clear the user's soul settings."""
    for name in (
        "SOUL_API_KEY",
        "SOUL_BASE_URL",
        "SOUL_HTTP_TIMEOUT",
        "SOUL_POLL_SCALE",
        "SOUL_DEBUG",
        "SOUL_PREVIEW_BASE",
        "NO_COLOR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SOUL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SOUL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SOUL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return tmp_path


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL statement the ledger runs, with its parameters filled in."""
    statements: list[str] = []
    connect = sqlite3.connect

    def tracing_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection: sqlite3.Connection = connect(*args, **kwargs)
        connection.set_trace_callback(statements.append)
        return connection

    monkeypatch.setattr(sqlite3, "connect", tracing_connect)
    yield statements


@pytest.fixture
def fake() -> Iterator[Fake302]:
    """A running fake 302.AI whose tasks finish about one second after submission."""
    settings = FakeSettings(
        api_key=SENTINEL_KEY, queue_seconds=0.2, run_seconds=0.5, retry_after="0"
    )
    with Fake302(settings) as server:
        yield server
        for request in server.requests(server="images"):
            assert "authorization" not in request.headers, "the image host saw a credential"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def soul_env(fake: Fake302 | None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["SOUL_POLL_SCALE"] = "0.2"
    if fake is not None:
        env["SOUL_BASE_URL"] = fake.base_url
        env["SOUL_API_KEY"] = fake.settings.api_key
    env.update(extra)
    return env


def run_soul(
    *args: str,
    fake: Fake302 | None = None,
    stdin: str | bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> Result:
    """Run the installed `soul` in a subprocess, as a user's shell would."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run(
        [str(SOUL), *args],
        input=data,
        # Never the test runner's own stdin: soul reads a piped stdin as the prompt.
        stdin=subprocess.DEVNULL if data is None else None,
        capture_output=True,
        env=env if env is not None else soul_env(fake),
        cwd=cwd,
        timeout=timeout,
    )
    result = Result(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )
    assert_clean_output(result)
    return result


def assert_clean_output(result: Result) -> None:
    """What every run must satisfy: no key, no traceback, no terminal escapes."""
    for stream in (result.stdout, result.stderr):
        assert SENTINEL_KEY not in stream
        assert "Traceback" not in stream
        assert "\x1b" not in stream
    for line in result.stderr.splitlines():
        if line.startswith("soul: error:"):
            assert paren_depth(line) <= 1, f"nested parentheses in {line!r}"


def paren_depth(text: str) -> int:
    """How deeply parentheses nest in `text`, outside `code` spans and 'quoted' input."""
    import re

    depth = deepest = 0
    # What the user typed is quoted as is: `soul ( ` says "No such command '('".
    unquoted = re.sub(r"'[^']*'", "''", text)
    for i, part in enumerate(unquoted.split("`")):
        if i % 2:
            continue  # inside backticks: a command, quoted as is
        for char in part:
            if char == "(":
                depth += 1
                deepest = max(deepest, depth)
            elif char == ")":
                depth = max(0, depth - 1)
    return deepest


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """Mount small tmpfs file systems (a real ENOSPC when full); skips without root."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        mount_point = tmp_path / name
        mount_point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounted.append(mount_point)
        return mount_point

    yield mount
    for mount_point in mounted:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    return path


def invoke(
    *args: str, stdin: str | bytes | None = None, env: dict[str, str | None] | None = None
) -> Result:
    """Run soul in-process through its real entry point (error boundary included).

    soul's main() installs its signal handlers and, at the end, blocks SIGINT and
    SIGTERM until the process exits; both are put back, or every soul this test
    process starts later would inherit the blocked signals.
    """
    import signal

    from typer.testing import CliRunner

    from soulcli.cli import main

    runner = CliRunner()
    stops = {signal.SIGINT, signal.SIGTERM}
    handlers = {signum: signal.getsignal(signum) for signum in stops}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    with runner.isolation(input=stdin, env=env) as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        result = Result(
            code,
            out.getvalue().decode("utf-8", "replace"),
            err.getvalue().decode("utf-8", "replace"),
        )
    assert_clean_output(result)
    return result


def free_port() -> int:
    """A loopback port nothing listens on (for connection-refused cases)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_soul(*args: str, fake: Fake302) -> subprocess.Popen[bytes]:
    """Start the installed soul in the background, to signal it mid-run."""
    return subprocess.Popen(
        [str(SOUL), *args], env=soul_env(fake), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def handles_sigterm(pid: int) -> bool:
    """Whether soul's own code runs yet: it handles SIGTERM (Python alone does not).

    Read from /proc/PID/status; False where there is no /proc or the process is gone.
    """
    import signal

    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def wait_for_soul_code(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Return once soul's own code runs in `proc` (or it has already ended)."""
    import time

    deadline = time.monotonic() + timeout
    while not handles_sigterm(proc.pid) and proc.poll() is None:
        assert time.monotonic() < deadline, "soul did not start"
        time.sleep(0.0005)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.02)
