"""`soul config`: read and change settings in the 0600 TOML config file."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from soulcli.commands import new_app
from soulcli.errors import ExitCode
from soulcli.options import JsonFlag

app = new_app(
    name="config",
    help="Show or change settings (API key, base URL, defaults).\n\n"
    "\b\nExamples:\n  soul config set api_key\n  soul config list",
    no_args_is_help=True,
)

KeyArgument = Annotated[
    str,
    typer.Argument(
        help="api_key, base_url, style, aspect_ratio, quality, out_dir, confirm_above or show."
    ),
]


@app.command("set")
def config_set(
    key: KeyArgument,
    value: Annotated[
        str | None,
        typer.Argument(help="The value; for api_key leave it out to be asked (or pipe it in)."),
    ] = None,
) -> None:
    """Set a config value.

    \b
    Examples:
      soul config set api_key    # asks for the key, without echo
      soul config set quality 1080p
    """
    from soulcli import ui
    from soulcli.config import SECRET_KEYS, canonical_key, load_config, save_config
    from soulcli.errors import UsageError

    name = canonical_key(key)
    if value is None:
        if name not in SECRET_KEYS:
            raise UsageError(f"give a value: soul config set {name} VALUE")
        value = _read_secret(name)
    cleaned = validate_value(name, value)
    values = load_config()
    values[name] = cleaned
    path = save_config(values)
    shown = mask(name, cleaned)
    ui.say(f"soul: {name} set to {shown} in {path}")


@app.command("get")
def config_get(key: KeyArgument, json_: JsonFlag = False) -> None:
    """Print one effective value, default included (the API key masked).

    Exits 3 for a key set nowhere that has no default (api_key, confirm_above).

    \b
    Example:
      soul config get quality
    """
    from soulcli import ui
    from soulcli.config import UNSET_MEANING, canonical_key

    name = canonical_key(key)
    value, source = effective_value(name)
    if json_:
        shown = mask(name, value) if value is not None else None
        ui.emit_json({"key": name, "value": shown, "source": source or None})
    if value is None:
        ui.say(f"soul: {name} is not set; {UNSET_MEANING[name]}")
        raise typer.Exit(int(ExitCode.CONFIG))
    if not json_:
        ui.emit(mask(name, value))


@app.command("unset")
def config_unset(key: KeyArgument) -> None:
    """Remove a value from the config file.

    \b
    Example:
      soul config unset style
    """
    from soulcli import ui
    from soulcli.config import canonical_key, load_config, save_config

    name = canonical_key(key)
    values = load_config()
    if values.pop(name, None) is None:
        ui.say(f"soul: {name} was not set in the config file")
        return
    path = save_config(values)
    ui.say(f"soul: {name} removed from {path}")


@app.command("list")
def config_list(json_: JsonFlag = False) -> None:
    """Show every setting, its effective value and where it comes from.

    Sources: file (the config file), env SOUL_API_KEY / SOUL_BASE_URL, or default.

    \b
    Example:
      soul config list --json
    """
    from soulcli import ui
    from soulcli.config import KNOWN_KEYS, UNSET_MEANING, load_config, value_and_source

    values = load_config()  # read once for every key
    rows = {name: value_and_source(name, values) for name in KNOWN_KEYS}
    if json_:
        ui.emit_json(
            {
                name: {"value": mask(name, v) if v is not None else None, "source": src}
                for name, (v, src) in rows.items()
            }
        )
        return
    width = max(len(name) for name in rows)
    under_value = " " * (width + 3)  # a wrapped line goes on under the value
    for name, (value, source) in rows.items():
        if value is None:
            line = f"{name:<{width}} = none  [not set: {UNSET_MEANING[name]}]"
        else:
            line = f"{name:<{width}} = {mask(name, value)}  [{source}]"
        ui.emit_wrapped(line, under_value)


@app.command("path")
def config_path_command(json_: JsonFlag = False) -> None:
    """Print where the config file lives (SOUL_CONFIG_DIR moves it).

    \b
    Example:
      soul config path
    """
    from soulcli import ui
    from soulcli.paths import config_path

    path = config_path()
    if json_:
        ui.emit_json({"path": str(path), "exists": path.exists()})
    else:
        ui.emit(str(path))


def mask(name: str, value: str) -> str:
    from soulcli.config import SECRET_KEYS, mask_secret

    return mask_secret(value) if name in SECRET_KEYS else value


def effective_value(name: str) -> tuple[str | None, str]:
    """The value in force for a key and its source: env, file or default."""
    from soulcli.config import load_config, value_and_source

    return value_and_source(name, load_config())


def _read_secret(name: str) -> str:
    """Ask for a secret without echo on a terminal, or read one line from piped stdin."""
    from soulcli.errors import UsageError

    if sys.stdin.isatty():
        value: str = typer.prompt(f"{name}", hide_input=True, err=True)
    else:
        value = sys.stdin.readline()
    if not value.strip():
        raise UsageError(f"no value given for {name}")
    return value


def validate_value(name: str, value: str) -> str:
    """Check a value before it is stored; return it in canonical form."""
    from soulcli.errors import ConfigError, UsageError

    text = value.strip()
    if not text:
        raise UsageError(f"{name} cannot be empty; use `soul config unset {name}`")
    if name == "api_key":
        if any(c.isspace() or ord(c) < 0x20 for c in text) or not text.isascii():
            raise UsageError("the API key has spaces or characters that cannot be sent in a header")
        return text
    if name == "base_url":
        from soulcli.config import check_base_url

        try:
            return check_base_url(text)
        except ConfigError as exc:
            raise UsageError(exc.message, hint=exc.hint) from exc
    if name == "style":
        from soulcli.catalog import resolve_style

        return resolve_style(text).name
    if name == "aspect_ratio":
        from soulcli.constants import ASPECT_RATIOS

        if text not in ASPECT_RATIOS:
            raise UsageError(
                f"unknown aspect ratio {text!r}", hint="use one of " + ", ".join(ASPECT_RATIOS)
            )
        return text
    if name == "confirm_above":
        from soulcli.config import parse_ptc

        try:
            return format(parse_ptc(text), "f")
        except ConfigError as exc:
            raise UsageError(exc.message) from exc
    if name == "show":
        from soulcli.config import parse_flag

        try:
            return parse_flag(text)
        except ConfigError as exc:
            raise UsageError(exc.message) from exc
    if name == "quality":
        from soulcli.models import normalize_quality

        tier = normalize_quality(text)
        if tier is None:
            raise UsageError(f"unknown quality {text!r}", hint="use 720p or basic, 1080p or high")
        return tier
    return text
