"""Bad input, table-driven: one clear line naming what is at fault, a documented code, no POST."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from soulcli.fake302 import Fake302
from soulcli.paths import config_path
from tests.conftest import SENTINEL_KEY, invoke

Setup = Callable[[Path], None]


def write_config(text: str | bytes, mode: int = 0o600) -> Setup:
    def setup(tmp: Path) -> None:
        path = config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        os.chmod(path, mode)

    return setup


def config_is_a_directory(tmp: Path) -> None:
    config_path().mkdir(parents=True)


def symlinked_config(tmp: Path) -> None:
    real = tmp / "real.toml"
    real.write_text('quality = "720p"\n')
    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().symlink_to(real)


def batch_file(name: str, content: bytes) -> Setup:
    def setup(tmp: Path) -> None:
        (tmp / name).write_bytes(content)

    return setup


def nothing(tmp: Path) -> None:
    pass


GOOD_LINES = [json.dumps({"prompt": f"p{i}"}) for i in range(1, 57)]
LINE_57 = "\n".join([*GOOD_LINES, '{"prompt": ']).encode()  # broken JSON on line 57
UUID_SHORT = "6b9e6b4d-325a-4a78-a0fb-a00ddf61238"

# id, arguments ({tmp} is replaced by the test's directory), stdin, setup, exit code, words
CASES: list[tuple[str, list[str], bytes | None, Setup, int, str]] = [
    ("empty prompt", ["generate", ""], None, nothing, 2, "prompt is empty"),
    ("blank prompt", ["generate", " \t "], None, nothing, 2, "prompt is empty"),
    ("newlines only", ["generate", "\n\n"], None, nothing, 2, "prompt is empty"),
    ("no prompt, empty stdin", ["generate"], b"", nothing, 2, "prompt on stdin is empty"),
    ("huge prompt", ["generate", "x" * 100_000], None, nothing, 2, "limit is 10000"),
    ("NUL in prompt", ["generate", "a\x00dog"], None, nothing, 2, "control characters"),
    ("BEL in prompt", ["generate", "\x07dog"], None, nothing, 2, "control characters"),
    ("lone surrogate", ["generate", "caf\udce9"], None, nothing, 2, "not valid UTF-8"),
    ("non-UTF-8 stdin", ["generate", "-"], b"\xff\xfe\xfa", nothing, 2, "not valid UTF-8"),
    ("empty stdin", ["generate", "-"], b"", nothing, 2, "prompt on stdin is empty"),
    ("ratio 5:4", ["generate", "a", "--ar", "5:4"], None, nothing, 2, "--ar"),
    ("ratio 16x9", ["generate", "a", "--ar", "16x9"], None, nothing, 2, "--ar"),
    ("ratio 1:1:1", ["generate", "a", "--ar", "1:1:1"], None, nothing, 2, "--ar"),
    ("ratio empty", ["generate", "a", "--ar", ""], None, nothing, 2, "--ar"),
    ("ratio 0:0", ["generate", "a", "-a", "0:0"], None, nothing, 2, "--ar"),
    ("quality 4k", ["generate", "a", "-q", "4k"], None, nothing, 2, "--quality"),
    ("quality 2160p", ["generate", "a", "-q", "2160p"], None, nothing, 2, "--quality"),
    ("quality empty", ["generate", "a", "-q", ""], None, nothing, 2, "--quality"),
    (
        "seed 0",
        ["generate", "a", "--seed", "0"],
        None,
        nothing,
        2,
        "seed 0 is outside 1 to 1000000",
    ),
    ("seed -1", ["generate", "a", "--seed", "-1"], None, nothing, 2, "seed -1 is outside"),
    (
        "seed too big",
        ["generate", "a", "--seed", "1000001"],
        None,
        nothing,
        2,
        "seed 1000001 is outside",
    ),
    ("seed word", ["generate", "a", "--seed", "abc"], None, nothing, 2, "--seed"),
    ("seed float", ["generate", "a", "--seed", "1.5"], None, nothing, 2, "--seed"),
    ("seed exponent", ["generate", "a", "--seed", "1e3"], None, nothing, 2, "--seed"),
    ("seed empty", ["generate", "a", "--seed", ""], None, nothing, 2, "--seed"),
    ("style ambiguous 0.5", ["generate", "a", "-s", "0.5"], None, nothing, 2, "ambiguous"),
    ("style ambiguous 2000s", ["generate", "a", "-s", "2000s"], None, nothing, 2, "ambiguous"),
    (
        "style unknown",
        ["generate", "a", "-s", "Tokio streetstyle"],
        None,
        nothing,
        2,
        "did you mean 'Tokyo streetstyle'",
    ),
    ("style empty", ["generate", "a", "-s", ""], None, nothing, 2, "style is empty"),
    ("style short uuid", ["generate", "a", "-s", UUID_SHORT], None, nothing, 2, "unknown style"),
    (
        "style non-hex uuid",
        ["generate", "a", "-s", "zzzzzzzz-325a-4a78-a0fb-a00ddf612380"],
        None,
        nothing,
        2,
        "unknown style",
    ),
    (
        "negative with NUL",
        ["generate", "a", "--negative", "x\x00"],
        None,
        nothing,
        2,
        "negative prompt",
    ),
    ("timeout 0", ["generate", "a", "--timeout", "0"], None, nothing, 2, "--timeout"),
    ("timeout negative", ["generate", "a", "--timeout", "-5"], None, nothing, 2, "--timeout"),
    ("timeout word", ["generate", "a", "--timeout", "soon"], None, nothing, 2, "--timeout"),
    ("unknown option", ["generate", "a", "--bogus"], None, nothing, 2, "--bogus"),
    ("unknown command", ["genrate", "a"], None, nothing, 2, "did you mean 'generate'"),
    ("like missing", ["generate", "--like", "{tmp}/nope.png"], None, nothing, 2, "--like"),
    ("fetch dot-dot", ["fetch", "../../etc/passwd"], None, nothing, 2, "not a task id"),
    ("fetch space", ["fetch", "a b"], None, nothing, 2, "not a task id"),
    ("fetch encoded dots", ["fetch", "%2e%2e"], None, nothing, 2, "not a task id"),
    (
        "corrupt config",
        ["generate", "a"],
        None,
        write_config("api_key = [oops\n"),
        3,
        "not valid TOML",
    ),
    (
        "config is a directory",
        ["generate", "a"],
        None,
        config_is_a_directory,
        3,
        "cannot read config file",
    ),
    (
        "config wrong type",
        ["generate", "a"],
        None,
        write_config("quality = 1080\n"),
        3,
        "quality must be a string",
    ),
    (
        "config not UTF-8",
        ["config", "list"],
        None,
        write_config(b'style = "\xff"\n'),
        3,
        "config.toml",
    ),
    (
        "world-readable key",
        ["generate", "a"],
        None,
        write_config(f'api_key = "{SENTINEL_KEY}"\n', 0o644),
        3,
        "chmod 600",
    ),
    ("symlinked config", ["generate", "a"], None, symlinked_config, 3, "symlink"),
    (
        "batch line 57",
        ["batch", "{tmp}/b.jsonl"],
        None,
        batch_file("b.jsonl", LINE_57),
        2,
        "b.jsonl:57: not valid JSON",
    ),
    (
        "batch unknown key",
        ["batch", "{tmp}/k.jsonl"],
        None,
        batch_file("k.jsonl", b'{"prompt": "a", "sytle": "Y2K"}\n'),
        2,
        "k.jsonl:1: unknown key 'sytle'",
    ),
    ("batch missing file", ["batch", "{tmp}/none.txt"], None, nothing, 2, "none.txt"),
    (
        "batch not UTF-8",
        ["batch", "{tmp}/u.txt"],
        None,
        batch_file("u.txt", b"ok\n\xff\n"),
        2,
        "u.txt:2: not valid UTF-8",
    ),
    (
        "batch empty",
        ["batch", "{tmp}/e.txt"],
        None,
        batch_file("e.txt", b"\n# only\n"),
        2,
        "has no prompts",
    ),
    (
        "batch bad ratio",
        ["batch", "{tmp}/r.txt", "--ar", "7:5"],
        None,
        batch_file("r.txt", b"a\n"),
        2,
        "--ar",
    ),
    (
        "batch bad name",
        ["batch", "{tmp}/n.jsonl"],
        None,
        batch_file("n.jsonl", b'{"prompt": "a", "name": "../x"}\n'),
        2,
        "n.jsonl:1: name",
    ),
    (
        "batch max-cost word",
        ["batch", "{tmp}/m.txt", "--max-cost", "lots"],
        None,
        batch_file("m.txt", b"a\n"),
        2,
        "--max-cost",
    ),
    ("history bad state", ["history", "--state", "done"], None, nothing, 2, "unknown state"),
    ("history bad since", ["history", "--since", "yesterday"], None, nothing, 2, "--since"),
    ("history limit 0", ["history", "--limit", "0"], None, nothing, 2, "--limit"),
    ("config bad quality", ["config", "set", "quality", "4k"], None, nothing, 2, "unknown quality"),
    (
        "config unknown key",
        ["config", "set", "colour", "red"],
        None,
        nothing,
        2,
        "unknown config key",
    ),
    (
        "config http url",
        ["config", "set", "base_url", "http://example.com"],
        None,
        nothing,
        2,
        "https",
    ),
    (
        "config negative ceiling",
        ["config", "set", "confirm_above", "--", "-1"],
        None,
        nothing,
        2,
        "PTC amount",
    ),
    ("config set without value", ["config", "set", "style"], None, nothing, 2, "give a value"),
]


@pytest.mark.parametrize(
    ("case", "args", "stdin", "setup", "code", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input(
    fake: Fake302,
    tmp_path: Path,
    case: str,
    args: list[str],
    stdin: bytes | None,
    setup: Setup,
    code: int,
    words: str,
) -> None:
    setup(tmp_path)
    env: dict[str, str | None] = {
        "SOUL_BASE_URL": fake.base_url,
        "SOUL_API_KEY": fake.settings.api_key,
    }
    if "config" in case or "key" in case:
        env["SOUL_API_KEY"] = None  # let the config file be read for the key
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = invoke(*argv, stdin=stdin, env=env)
    assert result.code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("soul: error:") for line in lines), result.stderr
    assert len(lines) == 1 or (args[0] == "batch" and len(lines) == 2), result.stderr
    assert words in result.stderr
    assert result.stdout == ""
    assert fake.requests() == []


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


def test_unknown_task_id_is_not_found(fake: Fake302) -> None:
    env: dict[str, str | None] = {
        "SOUL_BASE_URL": fake.base_url,
        "SOUL_API_KEY": fake.settings.api_key,
    }
    result = invoke("fetch", "higgsfield_000000000000", env=env)
    assert result.code == 7 and "higgsfield_000000000000" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert fake.post_count() == 0
