"""The CLI surface: usage errors, help, exit codes, start-up imports, completion scripts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer

from soulcli.errors import ExitCode
from tests.conftest import SOUL, invoke, run_soul

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["generate"],
        ["batch"],
        ["fetch"],
        ["history"],
        ["history", "show"],
        ["styles"],
        ["config"],
        ["config", "set"],
        ["config", "get"],
        ["config", "unset"],
        ["config", "list"],
        ["config", "path"],
        ["doctor"],
    ],
)
def test_every_command_has_help_with_an_example_or_summary(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.code == 0
    assert result.stdout.startswith("Usage: soul")
    assert len(result.stdout.splitlines()) > 3


def test_bare_soul_prints_help_on_stderr_and_exits_2() -> None:
    result = invoke()
    assert result.code == 2 and "Usage: soul" in result.stderr and result.stdout == ""


def test_version() -> None:
    from soulcli import __version__

    assert invoke("--version").stdout.strip() == f"soul {__version__}"


def test_exit_code_table_in_the_reference_matches_the_code() -> None:
    readme = (ROOT / "docs" / "reference.md").read_text()
    table = dict(re.findall(r"^\| (\d+) \| `([A-Z_]+)` \|", readme, flags=re.M))
    assert {int(code): name for code, name in table.items()} == {
        int(code): code.name for code in ExitCode
    }


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["styles", "--search", "y2k"],
        ["config", "path"],
        ["generate", "--help"],
        ["doctor", "--help"],
    ],
)
def test_light_commands_do_not_import_httpx(args: list[str]) -> None:
    probe = (
        "import sys\n"
        "from soulcli.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('httpx', 'sqlite3', 'rich', 'soulcli.client', "
        "'rapidfuzz', 'PIL', 'textual_image') if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in proc.stderr, proc.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_current(shell: str) -> None:
    generated = subprocess.run(
        [str(SOUL)],
        env={"_SOUL_COMPLETE": f"source_{shell}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    stored = (ROOT / "completions" / f"soul.{shell}").read_text()
    assert generated.strip() == stored.strip(), (
        f"completions/soul.{shell} is stale: run `python -m soulcli.completions`"
    )


def test_completion_offers_styles_and_ratios() -> None:
    def complete(words: str) -> list[str]:
        line = f"soul {words}"
        env = {
            "_SOUL_COMPLETE": "complete_bash",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(line.split()) - (0 if line.endswith(" ") else 1)),
            "PATH": "/usr/bin:/bin",
        }
        proc = subprocess.run([str(SOUL)], env=env, capture_output=True, text=True, timeout=60)
        return proc.stdout.splitlines()

    assert "generate" in complete("gen")
    assert set(complete("generate --ar ")) >= {"16:9", "9:16", "1:1"}
    assert complete("generate --style Tok") == ["Tokyo\\ streetstyle"]  # one bash word


def test_every_listed_command_loads() -> None:
    import typer

    from soulcli.cli import COMMANDS, LazyGroup, app

    group = typer.main.get_command(app)
    assert isinstance(group, LazyGroup)
    for name in COMMANDS:
        command = group.get_command(None, name)  # type: ignore[arg-type]
        assert command is not None and command.name == name


def all_commands() -> list[tuple[str, click.Command]]:
    """Every command and subcommand, with its full name."""
    from soulcli.cli import app

    root = typer.main.get_command(app)
    found: list[tuple[str, click.Command]] = []

    def walk(prefix: str, command: click.Command) -> None:
        found.append((prefix, command))
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(f"{prefix} {name}", sub)

    walk("soul", root)
    return found


def test_a_short_flag_means_the_same_everywhere() -> None:
    meaning: dict[str, tuple[str, str]] = {}
    for name, command in all_commands():
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            longest = max(param.opts, key=len)
            for short in (o for o in param.opts if len(o) == 2):
                first = meaning.setdefault(short, (longest, name))
                assert first[0] == longest, (
                    f"{short} is {first[0]} in {first[1]}, {longest} in {name}"
                )


def test_every_argument_has_a_description() -> None:
    for name, command in all_commands():
        for param in command.params:
            if isinstance(param, click.Argument):
                described = str(getattr(param, "help", None) or "")
                assert described, f"{name} {param.name} has no help"
                result = invoke(*name.split()[1:], "--help")
                assert described.split(";")[0] in " ".join(result.stdout.split())


@pytest.mark.parametrize("width", ["40", "80"])
def test_help_examples_are_never_wrapped_inside_a_command(width: str) -> None:
    for name, command in all_commands():
        # The examples as written in the docstring: one command per line.
        written = re.findall(r"^\s+((?:soul|echo) .+)$", command.help or "", flags=re.M)
        assert written, f"`{name} --help` has no example"
        env = {**os.environ, "COLUMNS": width}
        shown = run_soul(*name.split()[1:], "--help", env=env).stdout.splitlines()
        for example in written:
            # Click re-wraps a paragraph without its \b mark: the example would no
            # longer be a line of its own.
            assert any(line.strip() == example.strip() for line in shown), (
                f"`{name} --help` at {width} columns does not show {example!r} on one line"
            )


@pytest.mark.parametrize("command", ["", "generate", "batch", "fetch", "history", "mcp"])
def test_help_fits_a_40_column_terminal(command: str) -> None:
    """Click never wraps help narrower than 50 columns unless told the width: at 40 the
    terminal cut every line in two. Only example commands (kept whole) may be longer."""
    from tests.conftest import soul_env

    args = [command, "--help"] if command else ["--help"]
    result = run_soul(*args, env=soul_env(None, COLUMNS="40"))
    assert result.code == 0
    prose = result.stdout.split("Examples:")[0] + result.stdout.split("Options:")[-1]
    too_long = [line for line in prose.splitlines() if len(line) > 40]
    assert too_long == []
