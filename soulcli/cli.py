"""The Typer app and the one error boundary that turns failures into one line and an exit code."""

from __future__ import annotations

import signal
import sys
from typing import Annotated, NoReturn

import typer

from soulcli import __version__
from soulcli.commands.config_cmd import config_app
from soulcli.commands.fetch import fetch
from soulcli.commands.generate import generate
from soulcli.commands.history import history_app
from soulcli.commands.styles import styles
from soulcli.errors import ExitCode, SoulError, Terminated

app = typer.Typer(
    name="soul",
    no_args_is_help=True,
    add_completion=True,
    # Plain Click help: rich help formatting would double `soul --help` start-up time.
    rich_markup_mode=None,
    # Locals may hold the API key: never let a traceback print them.
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command()(generate)
app.command()(fetch)
app.command()(styles)
app.add_typer(history_app)
app.add_typer(config_app)


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

    Example: soul generate "a dog" --style Tokyo --ar 16:9
    """


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def _fail(message: str, code: int) -> NoReturn:
    from soulcli.text import one_line

    sys.stderr.write(f"soul: error: {one_line(message, 2000)}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure ends as one line on stderr and a documented exit code."""
    import click

    signal.signal(signal.SIGTERM, _on_sigterm)
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="soul", standalone_mode=False)
    except SoulError as exc:
        message = exc.message + (f" ({exc.hint})" if exc.hint else "")
        _fail(message, int(exc.exit_code))
    except click.exceptions.NoArgsIsHelpError as exc:
        # `soul` or `soul config` alone: the help is the most useful answer.
        sys.stderr.write(exc.format_message() + "\n")
        sys.stderr.flush()
        raise SystemExit(int(ExitCode.USAGE)) from exc
    except click.UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        _fail(exc.format_message() + where, int(ExitCode.USAGE))
    except click.ClickException as exc:
        _fail(exc.format_message(), int(exc.exit_code))
    except (click.Abort, KeyboardInterrupt):
        _fail("interrupted", int(ExitCode.INTERRUPTED))
    except Terminated:
        _fail("terminated", int(ExitCode.TERMINATED))
    except BrokenPipeError:
        _quiet_broken_pipe()
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


def _quiet_broken_pipe() -> NoReturn:
    """The reader went away (`soul styles | head`): stop quietly, like other Unix tools."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    raise SystemExit(141)
