"""`soul config`: the 0600 TOML file, masking, validation and precedence."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from soulcli.config import effective_settings, load_config
from soulcli.paths import config_path
from tests.conftest import SENTINEL_KEY, invoke


def test_path_follows_soul_config_dir(isolated_dirs: Path) -> None:
    result = invoke("config", "path")
    assert result.stdout.strip() == str(isolated_dirs / "config" / "config.toml")


def test_set_api_key_from_stdin_writes_a_0600_file_and_never_echoes_it() -> None:
    result = invoke("config", "set", "api_key", stdin=SENTINEL_KEY + "\n")
    assert result.code == 0, result.stderr
    path = config_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_config()["api_key"] == SENTINEL_KEY
    assert SENTINEL_KEY[-4:] in result.stderr


def test_get_and_list_mask_the_key() -> None:
    invoke("config", "set", "api_key", SENTINEL_KEY)
    got = invoke("config", "get", "api_key")
    assert got.stdout.strip() == "****" + SENTINEL_KEY[-4:]
    listed = invoke("config", "list")
    assert re.search(
        r"^api_key +\= \*\*\*\*" + SENTINEL_KEY[-4:] + r"  \[file\]$", listed.stdout, re.M
    )
    as_json = json.loads(invoke("config", "list", "--json").stdout)
    assert as_json["api_key"] == {"value": "****" + SENTINEL_KEY[-4:], "source": "file"}
    assert as_json["base_url"] == {"value": "https://api.302.ai", "source": "default"}


def test_set_validates_and_canonicalises_values() -> None:
    assert invoke("config", "set", "style", "tokyo").code == 0
    assert invoke("config", "set", "quality", "high").code == 0
    assert invoke("config", "set", "ar", "16:9").code == 0
    assert load_config() == {
        "style": "Tokyo streetstyle",
        "quality": "1080p",
        "aspect_ratio": "16:9",
    }
    for key, value in [
        ("quality", "4k"),
        ("ar", "5:4"),
        ("style", "nope-nope"),
        ("base_url", "http://example.com"),
        ("colour", "red"),
    ]:
        result = invoke("config", "set", key, value)
        assert result.code == 2, (key, value)
        assert len(result.stderr.strip().splitlines()) == 1


def test_unset_removes_a_value() -> None:
    invoke("config", "set", "quality", "1080p")
    assert invoke("config", "unset", "quality").code == 0
    assert "quality" not in load_config()
    assert invoke("config", "get", "quality").stdout == "720p\n"  # the default, in force
    unset = invoke("config", "get", "confirm_above")
    assert unset.code == 3 and unset.stdout == ""
    assert "never asks" in unset.stderr


def test_list_shows_every_effective_value_and_its_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invoke("config", "set", "quality", "1080p")
    monkeypatch.setenv("SOUL_BASE_URL", "http://127.0.0.1:9")
    listed = invoke("config", "list")
    assert listed.code == 0
    rows = {}
    for line in listed.stdout.splitlines():
        name, _, rest = line.partition(" = ")
        rows[name.strip()] = rest
    assert rows == {
        "api_key": "none  [not set: run `soul config set api_key` or set SOUL_API_KEY]",
        "base_url": "http://127.0.0.1:9  [env SOUL_BASE_URL]",
        "style": "GENERAL  [default]",
        "aspect_ratio": "1:1  [default]",
        "quality": "1080p  [file]",
        "out_dir": ".  [default]",
        "confirm_above": "none  [not set: soul never asks before spending]",
        "show": "false  [default]",
    }
    assert "(not set)" not in listed.stdout


def test_values_with_quotes_and_backslashes_survive_the_toml_writer() -> None:
    odd = 'C:\\images\\"best" \u00e9t\u00e9 #1'
    assert invoke("config", "set", "out_dir", odd).code == 0
    assert load_config() == {"out_dir": odd}
    assert config_path().read_text(encoding="utf-8").startswith("# soul configuration")


def test_environment_beats_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    invoke("config", "set", "api_key", "sk-from-config-file-1234")
    invoke("config", "set", "base_url", "https://config.example")
    monkeypatch.setenv("SOUL_API_KEY", "sk-from-environment-5678")
    settings = effective_settings()
    assert settings.api_key == "sk-from-environment-5678"
    assert settings.base_url == "https://config.example"
    monkeypatch.setenv("SOUL_BASE_URL", "https://env.example")
    assert effective_settings().base_url == "https://env.example"
    got = invoke("config", "list")
    assert "****5678  [env SOUL_API_KEY]" in got.stdout


def test_command_line_beats_config_defaults() -> None:
    invoke("config", "set", "quality", "1080p")
    invoke("config", "set", "style", "Y2K")
    from_config = json.loads(invoke("generate", "x", "--dry-run", "--json").stdout)
    assert from_config["body"]["quality"] == "1080p"
    assert from_config["cost_ptc"] == 0.2
    overridden = json.loads(
        invoke("generate", "x", "-q", "720p", "-s", "Glitch", "--dry-run", "--json").stdout
    )
    assert overridden["body"]["quality"] == "720p"
    assert overridden["body"]["style_id"] != from_config["body"]["style_id"]


def test_corrupt_config_is_one_clear_line() -> None:
    path = config_path()
    path.parent.mkdir(parents=True)
    path.write_text("api_key = [unclosed\n")
    result = invoke("generate", "a dog", "--dry-run")
    assert result.code == 3
    assert str(path) in result.stderr and "not valid TOML" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_wrong_types_in_config_are_named() -> None:
    path = config_path()
    path.parent.mkdir(parents=True)
    path.write_text("quality = 1080\n")
    result = invoke("config", "list")
    assert result.code == 3 and "quality must be a string" in result.stderr


def test_world_readable_key_file_is_refused_with_a_chmod_hint() -> None:
    invoke("config", "set", "api_key", SENTINEL_KEY)
    os.chmod(config_path(), 0o644)
    result = invoke("generate", "a dog", "--dry-run")
    assert result.code == 3
    assert f"chmod 600 {config_path()}" in result.stderr


def test_symlinked_config_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.toml"
    real.write_text('quality = "720p"\n')
    config_path().parent.mkdir(parents=True)
    config_path().symlink_to(real)
    result = invoke("config", "list")
    assert result.code == 3 and "symlink" in result.stderr


def test_get_and_path_speak_json_too(isolated_dirs: Path) -> None:
    invoke("config", "set", "api_key", SENTINEL_KEY)
    got = json.loads(invoke("config", "get", "api_key", "--json").stdout)
    assert got == {"key": "api_key", "value": "****" + SENTINEL_KEY[-4:], "source": "file"}
    default = json.loads(invoke("config", "get", "ar", "--json").stdout)
    assert default == {"key": "aspect_ratio", "value": "1:1", "source": "default"}
    unset = invoke("config", "get", "confirm_above", "--json")
    assert unset.code == 3
    assert json.loads(unset.stdout) == {"key": "confirm_above", "value": None, "source": None}
    path = json.loads(invoke("config", "path", "--json").stdout)
    assert path == {"path": str(isolated_dirs / "config" / "config.toml"), "exists": True}


@pytest.mark.parametrize(("given", "stored"), [("yes", "true"), ("ON", "true"), ("0", "false")])
def test_show_takes_yes_and_no_words(given: str, stored: str) -> None:
    assert invoke("config", "set", "show", given).code == 0
    assert load_config() == {"show": stored}


def test_show_refuses_anything_else() -> None:
    refused = invoke("config", "set", "show", "sometimes")
    assert refused.code == 2 and "not true or false" in refused.stderr
    assert load_config() == {}


def test_show_as_a_toml_boolean_is_understood() -> None:
    from soulcli.config import effective_settings
    from soulcli.paths import config_path

    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text("show = true\n")
    assert effective_settings().show is True
    config_path().write_text('show = "maybe"\n')
    listed = invoke("config", "list")
    assert listed.code == 3
    assert "show must be true or false, not 'maybe'" in listed.stderr
    assert str(config_path()) in listed.stderr
