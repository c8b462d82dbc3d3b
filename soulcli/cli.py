"""The Typer app and the one error boundary that turns failures into one line and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Annotated, NoReturn

import click
import typer
from typer.core import TyperGroup

from soulcli import __version__
from soulcli.errors import ExitCode, SoulError, Stopped

# Each command lives in its own module and is imported only when it runs (or is
# completed), so `soul styles` does not pay for building `generate`. The short
# help here is what `soul --help` lists; a test checks every entry loads.
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("soulcli.commands.generate", "Generate 4 images from a prompt and save them."),
    "batch": ("soulcli.commands.batch", "Generate for every prompt in a file, concurrently."),
    "fetch": ("soulcli.commands.fetch", "Resume unfinished tasks, or save or show one."),
    "history": ("soulcli.commands.history", "Past tasks from the local ledger, with spend."),
    "sheet": ("soulcli.commands.sheet", "One PNG contact sheet of tasks or images."),
    "styles": ("soulcli.commands.styles", "List the styles and what each quality costs."),
    "show": ("soulcli.commands.show", "Show a task's images in the terminal."),
    "sweep": ("soulcli.commands.sweep", "One prompt across many styles, on one sheet."),
    "gallery": ("soulcli.commands.gallery", "Every task on one offline web page."),
    "config": ("soulcli.commands.config_cmd", "Show or change settings (API key, base URL, ...)."),
    "doctor": ("soulcli.commands.doctor", "Check config, key and API host; spends nothing."),
    "mcp": ("soulcli.commands.mcp", "Serve soul's tools to AI agents (MCP, stdio)."),
}


class NarrowHelpFormatter(click.HelpFormatter):
    """Click's help formatter with an option column that narrows with the terminal.

    Click keeps option names in a column up to 30 wide, which leaves a 40-column
    terminal 8 columns for the text beside it (and the terminal cuts every line).
    """

    def write_dl(
        self, rows: Iterable[tuple[str, str]], col_max: int = 30, col_spacing: int = 2
    ) -> None:
        if self.width < 70:  # as Click lays it out on anything wider
            col_max = min(col_max, max(12, self.width // 3))
        super().write_dl(rows, col_max=col_max, col_spacing=col_spacing)


class SoulContext(click.Context):
    formatter_class = NarrowHelpFormatter


def _narrow_help(command: click.Command) -> None:
    """Give a command (and its subcommands) the narrowing help formatter."""
    command.context_class = SoulContext
    for sub in getattr(command, "commands", {}).values():
        _narrow_help(sub)


class LazyGroup(TyperGroup):
    """The root command: subcommands are built from their modules on first use."""

    context_class = SoulContext

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        import importlib

        module = importlib.import_module(entry[0])
        command = typer.main.get_command(module.app)
        command.name = cmd_name
        _narrow_help(command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_, summary) in COMMANDS.items()])

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            from soulcli.fuzzy import closest

            # The same matcher as style names, so both kinds of typo are judged alike.
            typed = args[0].lower() if args else ""
            # A start of a command name (`gen`) is what a user means most often.
            close = [c for c in COMMANDS if typed and c.startswith(typed)][:1]
            close = close or (closest(typed, {c: [c] for c in COMMANDS}, limit=1) if typed else [])
            if not close:
                raise
            hint = f"{exc.message.rstrip('.')}; did you mean {close[0]!r}?"
            raise click.UsageError(hint, ctx=exc.ctx) from None


def _help_width() -> int:
    """Click's width for help text, without its floor of 50 columns: on a 40-column
    terminal that floor made the terminal cut every help line in two."""
    import shutil

    return max(min(shutil.get_terminal_size().columns, 80) - 2, 30)


app = typer.Typer(
    name="soul",
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=True,
    # Plain Click help: rich help formatting would double `soul --help` start-up time.
    rich_markup_mode=None,
    # Locals may hold the API key: never let a traceback print them.
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"], "terminal_width": _help_width()},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"soul {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = None,
) -> None:
    """Generate images with Higgsfield Soul through 302.AI.

    \b
    Examples:
      soul generate "a dog" --style Tokyo --ar 16:9
      soul styles --search y2k
      soul doctor
    """


def _fail(message: str, code: int) -> NoReturn:
    from soulcli import signals
    from soulcli.text import one_line

    signals.block()  # a Ctrl-C now must not cut this line or turn into a traceback
    sys.stderr.write(f"soul: error: {one_line(message, 2000)}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def _quoted_extras(message: str) -> str:
    """Click says "Got unexpected extra argument (x y)": quote what the user typed instead,
    so a stray `(` or `)` in it cannot be read as part of soul's sentence."""
    import re

    match = re.fullmatch(r"Got unexpected extra (arguments?) \((.*)\)", message, flags=re.S)
    return f"unexpected extra {match[1]}: {match[2]!r}" if match else message


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure ends as one line on stderr and a documented exit code."""
    try:
        _run(argv)
    except Stopped as stop:
        # Ctrl-C while the boundary below was reporting an error: one line still, and
        # that error's words with it (they may hold a task id no one else knows).
        reported = stop.__context__
        while reported is not None and not isinstance(reported, SoulError):
            reported = reported.__context__
        if isinstance(reported, SoulError):
            hint = f" ({reported.hint})" if reported.hint else ""
            _fail(f"{reported.message}{hint}; then {stop.word}", int(stop.exit_code))
        _fail(stop.word, int(stop.exit_code))


def _run(argv: list[str] | None) -> None:
    from soulcli import signals

    try:
        # From here on Ctrl-C raises Interrupted, which Typer lets through to this boundary.
        signals.install()
        command = typer.main.get_command(app)
        result = command.main(args=argv, prog_name="soul", standalone_mode=False)
        # The work is done. Python resets signal handlers while it shuts down, and a
        # Ctrl-C then would kill soul by signal, with no message: hold it off instead.
        signals.block()
    except SoulError as exc:
        message = exc.message + (f" ({exc.hint})" if exc.hint else "")
        _fail(message, int(exc.exit_code))
    except click.exceptions.NoArgsIsHelpError as exc:
        # `soul` or `soul config` alone: the help is the most useful answer.
        signals.block()
        sys.stderr.write(exc.format_message() + "\n")
        sys.stderr.flush()
        raise SystemExit(int(ExitCode.USAGE)) from exc
    except click.UsageError as exc:
        # Click's own words may hold parentheses ("extra argument (x)"): no more of them.
        message = _quoted_extras(exc.format_message()).rstrip(".")
        if exc.ctx is not None:
            message += (
                f"{' ' if message.endswith('?') else '; '}see `{exc.ctx.command_path} --help`"
            )
        _fail(message, int(ExitCode.USAGE))
    except click.ClickException as exc:
        _fail(exc.format_message(), int(exc.exit_code))
    except Stopped as exc:
        _fail(exc.word, int(exc.exit_code))
    except (click.Abort, KeyboardInterrupt):
        _fail("interrupted", int(ExitCode.INTERRUPTED))
    except BrokenPipeError:
        from soulcli.ui import reader_went_away

        reader_went_away()
    except Exception as exc:  # a bug: one line, and the traceback only when asked for
        import os

        if os.environ.get("SOUL_DEBUG"):
            raise
        _fail(
            f"unexpected {type(exc).__name__}: {exc} (this is a bug in soul; "
            "SOUL_DEBUG=1 shows the traceback)",
            int(ExitCode.INTERNAL),
        )
    code = result if isinstance(result, int) else 0
    raise SystemExit(code)
