"""The TOML config file: where it lives, reading it safely, and writing it atomically at 0600."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from soulcli.constants import DEFAULT_QUALITY, DEFAULT_RATIO, DEFAULT_STYLE
from soulcli.errors import ConfigError, UsageError
from soulcli.paths import config_path

DEFAULT_BASE_URL = "https://api.302.ai"
SECRET_KEYS = frozenset({"api_key"})
# Every key `soul config` knows, with a one-line description for `config list`.
KNOWN_KEYS: dict[str, str] = {
    "api_key": "302.AI API key (sk-...); SOUL_API_KEY overrides it",
    "base_url": f"API base URL (default {DEFAULT_BASE_URL}); SOUL_BASE_URL overrides it",
    "style": "default style name or id for generate",
    "aspect_ratio": "default aspect ratio for generate",
    "quality": "default quality for generate (720p or 1080p)",
    "out_dir": "default output directory for images",
    "confirm_above": "ask before a run costing more than this many PTC (no terminal: needs --yes)",
    "show": "show the images in the terminal after generate and fetch (true or false)",
}
KEY_ALIASES = {
    "ar": "aspect_ratio",
    "ratio": "aspect_ratio",
    "out": "out_dir",
    "output_dir": "out_dir",
}


def canonical_key(key: str) -> str:
    """Return the config key a user meant (`ar` is `aspect_ratio`), or raise UsageError."""
    name = key.strip().lower().replace("-", "_")
    name = KEY_ALIASES.get(name, name)
    if name not in KNOWN_KEYS:
        known = ", ".join(KNOWN_KEYS)
        raise UsageError(f"unknown config key {key!r}", hint=f"known keys: {known}")
    return name


def load_config(path: Path | None = None) -> dict[str, str]:
    """Read the config file; a missing file is an empty config, a broken one a ConfigError."""
    path = path or config_path()
    try:
        info = path.lstat()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError(
            f"config file {path} is a symlink; soul keeps the API key only in a regular file",
            hint="replace the link with the file itself",
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    import tomllib  # only now: most runs have no config file to parse

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        # "Invalid value (at line 1, column 12)" becomes "invalid value at line 1, ...":
        # the hint follows in parentheses, and parentheses inside them read badly.
        where = str(exc).replace(" (at ", " at ").rstrip(")") if " (at " in str(exc) else exc
        raise ConfigError(
            f"config file {path} is not valid TOML: {where}",
            hint="fix it or remove it and run `soul config set` again",
        ) from exc
    values: dict[str, str] = {}
    for key, value in data.items():
        if key not in KNOWN_KEYS:
            continue  # written by a newer soul, perhaps: keep quiet, keep it on rewrite
        if key == "show" and isinstance(value, bool):
            value = "true" if value else "false"  # `show = true`, as TOML says it
        if key == "show":
            try:
                value = parse_flag(str(value))
            except ConfigError:
                raise ConfigError(
                    f"config file {path}: show must be true or false, not {value!r}",
                    hint="fix it with `soul config set show true`",
                ) from None
        if not isinstance(value, str):
            raise ConfigError(
                f"config file {path}: {key} must be a string, not {type(value).__name__}",
                hint=f"fix it with `soul config set {key} VALUE`",
            )
        values[key] = value
    if "api_key" in values and info.st_mode & 0o077:
        raise ConfigError(
            f"config file {path} holds the API key but other users can read it",
            hint=f"run: chmod 600 {path}",
        )
    return values


def save_config(values: dict[str, str], path: Path | None = None) -> Path:
    """Write the config atomically; the file is created at mode 0600 and never widened."""
    path = path or config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    import tomli_w

    ordered = {key: values[key] for key in KNOWN_KEYS if key in values}
    payload = ("# soul configuration: see `soul config list`\n" + tomli_w.dumps(ordered)).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def mask_secret(value: str) -> str:
    """Show at most the last 4 characters of a secret, and none of a short one."""
    if len(value) >= 12:
        return "****" + value[-4:]
    return "****"


@dataclass(frozen=True)
class Settings:
    """Effective settings: command line, then environment, then config file, then defaults."""

    # Never in a repr: a debugger, a crash reporter or `print(soul.settings)` shows it.
    api_key: str | None = field(repr=False)
    base_url: str
    style: str | None
    aspect_ratio: str | None
    quality: str | None
    out_dir: str | None
    confirm_above: Decimal | None = None
    show: bool = False  # draw the images after generate and fetch, on a terminal


ENV_OVERRIDES = {"api_key": "SOUL_API_KEY", "base_url": "SOUL_BASE_URL"}
# What soul uses when a key is set nowhere (shown by `config list`; the request
# builder applies the same values).
DEFAULTS = {
    "base_url": DEFAULT_BASE_URL,
    "style": DEFAULT_STYLE,
    "aspect_ratio": DEFAULT_RATIO,
    "quality": DEFAULT_QUALITY,
    "out_dir": ".",
    "show": "false",
}
# What a key set nowhere means, for the keys without a default.
UNSET_MEANING = {
    "api_key": "run `soul config set api_key` or set SOUL_API_KEY",
    "confirm_above": "soul never asks before spending",
}


def value_and_source(name: str, values: dict[str, str]) -> tuple[str | None, str]:
    """The value in force for a key and where it comes from: env, file, default or ""."""
    env_name = ENV_OVERRIDES.get(name)
    if env_name and os.environ.get(env_name, "").strip():
        return os.environ[env_name].strip(), f"env {env_name}"
    if values.get(name):
        return values[name].strip(), "file"
    if name in DEFAULTS:
        return DEFAULTS[name], "default"
    return None, ""


def effective_settings(values: dict[str, str] | None = None) -> Settings:
    """Merge environment and config file; command-line options are applied by the caller."""
    values = load_config() if values is None else values
    base_url = value_and_source("base_url", values)[0] or DEFAULT_BASE_URL
    return Settings(
        api_key=value_and_source("api_key", values)[0],
        base_url=base_url,
        style=values.get("style"),
        aspect_ratio=values.get("aspect_ratio"),
        quality=values.get("quality"),
        out_dir=values.get("out_dir"),
        confirm_above=parse_ptc(values["confirm_above"]) if "confirm_above" in values else None,
        show=values.get("show") == "true",
    )


def parse_flag(text: str) -> str:
    """`true` or `false` for yes/no, on/off, 1/0 in any case; ConfigError otherwise."""
    word = text.strip().lower()
    if word in ("true", "yes", "on", "1"):
        return "true"
    if word in ("false", "no", "off", "0"):
        return "false"
    raise ConfigError(f"{text!r} is not true or false")


def parse_ptc(text: str) -> Decimal:
    """A non-negative PTC amount, or ConfigError."""
    from decimal import InvalidOperation

    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise ConfigError(f"{text!r} is not a PTC amount (e.g. 0.5)") from exc
    if not value.is_finite() or value < 0:
        raise ConfigError(f"{text!r} is not a PTC amount (e.g. 0.5)")
    return value


def env_float(name: str, default: float, *, low: float, high: float) -> float:
    """A number from the environment, clamped to [low, high]; unset or unreadable means default."""
    text = os.environ.get(name, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        return default
    return min(max(value, low), high) if value == value else default


def check_base_url(url: str) -> str:
    """Return the base URL without a trailing slash; refuse plain http except on loopback."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError as exc:
        raise ConfigError(f"base URL {url!r} is not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"base URL {url!r} is not an http(s) URL", hint="use https://api.302.ai")
    if parts.scheme == "http" and not is_loopback(host):
        raise ConfigError(
            f"base URL {url!r} uses plain http, which would expose the API key",
            hint="use https; plain http is allowed only for 127.0.0.1 and localhost",
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"base URL {url!r} must not carry a query, fragment or credentials")
    return url.strip().rstrip("/")


def is_loopback(host: str) -> bool:
    """Return whether a URL host is this machine (the only place plain http is allowed)."""
    import ipaddress

    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_api_key(settings: Settings) -> str:
    """Return the API key or explain how to set one."""
    key = settings.api_key
    if not key:
        raise ConfigError(
            "no API key is set",
            hint="run `soul config set api_key` or set SOUL_API_KEY",
        )
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in key) or not key.isascii():
        raise ConfigError("the API key has spaces or characters that cannot be sent in a header")
    return key
