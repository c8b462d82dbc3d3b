"""`soul mcp`: serve soul's tools to AI agents over the Model Context Protocol (stdio)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from soulcli.commands import new_app
from soulcli.errors import ConfigError, UsageError

INSTALL_HINT = "install it with: pip install 'soulcli[mcp]'"


def mcp(
    max_spend: Annotated[
        str,
        typer.Option(
            "--max-spend",
            metavar="PTC",
            help="The most this server may spend in its lifetime; a call that would "
            "go past it is refused and sends nothing.",
        ),
    ] = "1",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="Where images go when a call names no directory (default: config "
            "out_dir, else ~/Pictures/soul).",
        ),
    ] = None,
) -> None:
    """Run an MCP server on stdin/stdout for AI assistants (Claude, IDEs, agents).

    It offers the tools list_styles, generate, fetch, history and price. Every task
    goes through the ledger, so `soul history` shows what an agent spent. Register it
    with a client as the full path of `soul` (what `which soul` prints) with the
    arguments `mcp --max-spend 1`; it reads the key from soul's config file.

    \b
    Examples:
      soul mcp          # spends 1 PTC at most
      soul mcp --max-spend 5 -o pics
    """
    from soulcli.config import effective_settings, parse_ptc, require_api_key

    try:
        cap = parse_ptc(max_spend)
    except ConfigError as exc:
        raise UsageError(f"--max-spend: {exc.message}") from exc
    try:
        import mcp as _sdk  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"`soul mcp` needs the {exc.name} package", hint=INSTALL_HINT) from None
    settings = effective_settings()
    require_api_key(settings)  # a server that can do nothing should not start
    from soulcli.mcp_server import serve
    from soulcli.outdir import prepare_out_dir

    out_dir = prepare_out_dir(_out_dir(out, settings.out_dir))
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop_server)
    serve(max_spend=cap, out_dir=out_dir)


def _stop_server(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM: end the server now.

    The SDK reads stdin on a worker thread that nothing interrupts, so a graceful stop
    would wait for it forever. Ending at once is safe: a tool call's task is in the
    ledger as it would be after kill -9, once a task id being recorded is written.
    """
    from soulcli import signals

    signals.wait_until_nothing_held(timeout=5.0)
    word = "interrupted" if signum == signal.SIGINT else "terminated"
    message = (
        f"soul: error: {word}; the MCP server stopped, and `soul fetch` finishes "
        "any task it was waiting for\n"
    )
    os.write(2, message.encode())
    os._exit(int(signals.exit_code_for(signum)))


def _out_dir(out: Path | None, configured: str | None) -> Path:
    if out is not None:
        return out.expanduser()
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_pictures_dir()) / "soul"


app = new_app()
app.command()(mcp)
