"""One module per command; each parses options, calls the core, renders, and exposes `app`."""

from __future__ import annotations

from typing import Any

import typer


def new_app(**settings: Any) -> typer.Typer:
    """A Typer app configured like every soul command (plain help, no pretty tracebacks)."""
    # Locals may hold the API key: never let a traceback print them.
    return typer.Typer(
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        pretty_exceptions_show_locals=False,
        add_completion=False,
        **settings,
    )
