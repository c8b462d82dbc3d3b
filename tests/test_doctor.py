"""`soul doctor`: every check, the exit code of the first problem, masking, and GETs only."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from soulcli.errors import ExitCode
from soulcli.fake302 import Fake302
from tests.conftest import SENTINEL_KEY, Result, free_port, invoke, run_soul, soul_env

PROBE_PATH = "/higgsfield/task/higgsfield_000000000000/fetch"
MASKED = "****" + SENTINEL_KEY[-4:]


def doctor(*args: str, fake: Fake302 | None, **env: str) -> Result:
    # A short read timeout: no check here should ever wait on a slow answer.
    return run_soul("doctor", *args, env=soul_env(fake, SOUL_HTTP_TIMEOUT="5", **env))


def without_env_key(fake: Fake302) -> dict[str, str]:
    env = soul_env(fake, SOUL_HTTP_TIMEOUT="5")
    del env["SOUL_API_KEY"]
    return env


def write_config(isolated_dirs: Path, text: str, mode: int = 0o600) -> Path:
    path = isolated_dirs / "config" / "config.toml"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def line_of(result: Result, start: str) -> str:
    found = [line for line in result.lines if line.startswith(start)]
    assert len(found) == 1, result.stdout
    return found[0]


def asked(fake: Fake302) -> list[tuple[str, str, str]]:
    """Every request the API host saw: method, path and the key it carried."""
    return [
        (r.method, r.path, r.headers.get("authorization", "").removeprefix("Bearer "))
        for r in fake.requests()
    ]


def test_all_well_exits_0_shows_sources_and_masks_the_key(
    fake: Fake302, isolated_dirs: Path
) -> None:
    path = write_config(isolated_dirs, f'api_key = "{SENTINEL_KEY}"\nquality = "1080p"\n')
    result = run_soul("doctor", env=without_env_key(fake))
    assert result.code == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert SENTINEL_KEY not in result.stdout + result.stderr
    assert all(line.startswith("ok    ") for line in result.lines), result.stdout
    assert result.lines[0] == f"ok    config file {path} (mode 0600)"
    assert f"ok    api_key {MASKED} [file]" in result.lines
    assert f"ok    base_url {fake.base_url} [env SOUL_BASE_URL]" in result.lines
    assert "ok    quality 1080p [file]" in result.lines
    assert "ok    style GENERAL [default]" in result.lines
    assert "ok    confirm_above none [not set: soul never asks before spending]" in result.lines
    host = line_of(result, "ok    API host")
    assert f"{fake.base_url} answers (GET {PROBE_PATH}: 404 in " in host
    assert result.lines[-1] == "ok    key accepted (a made-up key is refused with 401)"
    # Two GETs of a made-up task, the user's key, then a made-up one; never a POST.
    requests = asked(fake)
    assert [(method, path) for method, path, _ in requests] == [("GET", PROBE_PATH)] * 2
    assert requests[0][2] == SENTINEL_KEY
    assert requests[1][2].startswith("sk-") and requests[1][2] != SENTINEL_KEY
    assert fake.requests(server="images") == []


def test_no_key_exits_config_and_sends_nothing(fake: Fake302) -> None:
    result = run_soul("doctor", env=without_env_key(fake))
    assert result.code == ExitCode.CONFIG
    assert "FAIL  api_key not set" in result.lines
    assert "      fix: run `soul config set api_key` or set SOUL_API_KEY" in result.lines
    # The list goes on past the problem; what needs a key is skipped, not tried.
    assert "ok    quality 720p [default]" in result.lines
    assert result.lines[-2].startswith("skip  API host not asked")
    assert result.lines[-1].startswith("skip  key not tried")
    assert result.stderr.splitlines()[-1].startswith("soul: error: api_key not set")
    assert fake.requests() == []


def test_refused_key_exits_auth_with_a_fix_naming_the_variable(fake: Fake302) -> None:
    result = doctor(fake=fake, SOUL_API_KEY="sk-wrong0000000000000000000000000000000000000")
    assert result.code == ExitCode.AUTH
    assert ": 401 in " in line_of(result, "ok    API host")
    assert "FAIL  key refused by the API (401: Invalid API key)" in result.lines
    assert "SOUL_API_KEY overrides the config file" in result.stdout
    assert "soul: error: key refused by the API" in result.stderr
    assert [(m, p) for m, p, _ in asked(fake)] == [("GET", PROBE_PATH)]  # no second look


def test_host_down_exits_unreachable_and_skips_the_key(fake: Fake302) -> None:
    result = doctor(fake=fake, SOUL_BASE_URL=f"http://127.0.0.1:{free_port()}")
    assert result.code == ExitCode.UNREACHABLE
    assert line_of(result, "FAIL  API host: cannot reach the API at http://127.0.0.1:")
    assert result.lines[-1] == "skip  key not tried (the API host did not answer)"
    assert fake.requests() == []


@pytest.mark.parametrize(
    ("fault", "code", "failed"),
    [
        ("402", ExitCode.BALANCE, "FAIL  key known, but the account cannot pay"),
        ("403", ExitCode.BALANCE, "FAIL  key known, but the account cannot pay"),
        ("500", ExitCode.SERVER, "FAIL  API host"),
        ("429", ExitCode.SERVER, "FAIL  key not confirmed: the API is rate limiting"),
    ],
)
def test_api_answers_map_to_their_exit_codes(
    fake: Fake302, fault: str, code: ExitCode, failed: str
) -> None:
    fake.state.inject("poll", fault)
    result = doctor(fake=fake)
    assert result.code == code, result.stdout + result.stderr
    line_of(result, failed)
    assert f"({fault}: " in result.stdout or f": {fault} in " in result.stdout
    assert [(m, p) for m, p, _ in asked(fake)] == [("GET", PROBE_PATH)]  # no retry


@pytest.mark.parametrize(
    ("broken", "says", "fix"),
    [
        ("readable", "holds the API key but other users can read it", "chmod 600 {path}"),
        ("symlink", "is a symlink", "replace the link with the file itself"),
        ("toml", "is not valid TOML", "fix it or remove it"),
    ],
)
def test_an_unusable_config_file_exits_config_and_asks_nothing(
    fake: Fake302, isolated_dirs: Path, broken: str, says: str, fix: str
) -> None:
    key_line = f'api_key = "{SENTINEL_KEY}"\n'
    if broken == "readable":
        path = write_config(isolated_dirs, key_line, mode=0o644)
    elif broken == "symlink":
        target = isolated_dirs / "elsewhere" / "config.toml"
        target.parent.mkdir()
        target.write_text(key_line)
        target.chmod(0o600)
        path = isolated_dirs / "config" / "config.toml"
        path.parent.mkdir(mode=0o700)
        path.symlink_to(target)
    else:
        path = write_config(isolated_dirs, key_line + "quality = \n")
    result = doctor(fake=fake)
    assert result.code == ExitCode.CONFIG
    assert result.lines[0].startswith(f"FAIL  config file {path}")
    assert says in result.lines[0]
    assert result.lines[1].startswith("      fix: ") and fix.format(path=path) in result.lines[1]
    assert result.lines[-3:] == [
        "skip  settings not read (the config file cannot be used)",
        "skip  API host not asked (the config file cannot be used)",
        "skip  key not tried (the config file cannot be used)",
    ]
    assert fake.requests() == []


def test_a_bad_value_in_the_config_file_is_a_config_problem(
    fake: Fake302, isolated_dirs: Path
) -> None:
    write_config(isolated_dirs, 'quality = "4k"\naspect_ratio = "16:9"\n')
    result = doctor(fake=fake)
    assert result.code == ExitCode.CONFIG
    assert line_of(result, "FAIL  quality 4k [file]: unknown quality")
    assert "      fix: soul config set quality VALUE; use 720p or basic, 1080p or high" in (
        result.lines
    )
    assert "ok    aspect_ratio 16:9 [file]" in result.lines
    # A bad default for generate does not stop the API checks.
    assert result.lines[-1] == "ok    key accepted (a made-up key is refused with 401)"


def test_an_unwritable_data_dir_fails_but_every_check_still_runs(
    fake: Fake302, isolated_dirs: Path
) -> None:
    blocker = isolated_dirs / "a-file"
    blocker.write_text("")
    result = doctor(fake=fake, SOUL_DATA_DIR=str(blocker / "data"))
    assert result.code == ExitCode.CONFIG
    assert line_of(result, "FAIL  data dir").endswith(f"{blocker} is not a directory")
    assert result.lines[-1] == "ok    key accepted (a made-up key is refused with 401)"
    assert "soul: error: data dir" in result.stderr


def test_a_writable_data_dir_with_a_ledger_is_reported(fake: Fake302, isolated_dirs: Path) -> None:
    data = isolated_dirs / "data"
    data.mkdir()
    (data / "tasks.db").write_bytes(b"")
    result = doctor(fake=fake)
    assert f"ok    data dir {data} (writable, task ledger tasks.db)" in result.lines
    assert os.listdir(data) == ["tasks.db"]  # the write test left nothing behind


def test_json_has_checks_and_settings_with_the_key_masked(fake: Fake302) -> None:
    result = doctor("--json", fake=fake)
    assert result.code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["ok"] is True and payload["exit_code"] == 0
    assert [c["name"] for c in payload["checks"]] == [
        "config_file",
        "data_dir",
        "api_key",
        "base_url",
        "style",
        "aspect_ratio",
        "quality",
        "out_dir",
        "confirm_above",
        "show",
        "api_host",
        "key_accepted",
    ]
    for check in payload["checks"]:
        assert set(check) == {"name", "status", "ok", "detail", "fix"}
        assert check["status"] == "ok" and check["ok"] is True
    assert payload["settings"]["api_key"] == {"value": MASKED, "source": "env SOUL_API_KEY"}
    assert payload["settings"]["base_url"] == {
        "value": fake.base_url,
        "source": "env SOUL_BASE_URL",
    }
    assert payload["settings"]["style"] == {"value": "GENERAL", "source": "default"}
    assert fake.post_count() == 0


def test_json_on_a_problem_still_prints_the_whole_object(fake: Fake302) -> None:
    result = run_soul("doctor", "--json", env=without_env_key(fake))
    assert result.code == ExitCode.CONFIG
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and payload["exit_code"] == ExitCode.CONFIG
    statuses = {c["name"]: (c["status"], c["ok"]) for c in payload["checks"]}
    assert statuses["api_key"] == ("fail", False)
    assert statuses["api_host"] == statuses["key_accepted"] == ("skip", True)
    assert "soul: error: api_key not set" in result.stderr
    assert fake.requests() == []


@contextmanager
def any_key_gets_404() -> Iterator[tuple[str, list[str]]]:
    """A web server at a wrong base_url: it answers 404 to every path, whatever the key."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(f"{self.command} {self.path}")
            body = b"<!DOCTYPE html><html><body>Not found</body></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_host_that_takes_any_key_is_a_warning_not_an_ok(fake: Fake302) -> None:
    with any_key_gets_404() as (url, seen):
        result = doctor(fake=fake, SOUL_BASE_URL=url)
    assert result.code == 0  # the real service's answer to a bad key is not documented
    assert result.lines[-2].startswith(
        "warn  key not confirmed: the host answers 404 to a made-up key too"
    )
    assert (
        result.lines[-1]
        == "      fix: check that base_url is the 302.AI API: soul config get base_url"
    )
    assert seen == [f"GET {PROBE_PATH}"] * 2


def test_help_has_an_example_and_the_exit_codes() -> None:
    result = invoke("doctor", "--help")
    assert result.code == 0
    assert "Examples:\n    soul doctor\n" in result.stdout
    for code in (ExitCode.CONFIG, ExitCode.AUTH, ExitCode.BALANCE, ExitCode.UNREACHABLE):
        assert f"  {int(code)}  {code.name}:" in result.stdout
    assert f"  {int(ExitCode.SERVER)}  {ExitCode.SERVER.name}:" in result.stdout
