"""`soul styles`: the style catalog with prices; works offline."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from soulcli.commands import new_app
from soulcli.options import JsonFlag

if TYPE_CHECKING:
    from soulcli.catalog import Style


def styles(
    search: Annotated[
        str | None,
        typer.Option(
            "--search", "-S", metavar="TEXT", help="Only styles whose name or id contains TEXT."
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """List the styles you can pass to --style, with the price of each quality.

    Example: soul styles --search y2k
    """
    from soulcli import ui
    from soulcli.catalog import load_styles, search_styles

    found = list(search_styles(search)) if search else list(load_styles())
    if json_:
        ui.emit_json([{"id": s.id, "name": s.name, "preview_url": s.preview_url} for s in found])
        return
    if not found:
        ui.say(f"soul: no style matches {search!r}; run `soul styles` for all {len(load_styles())}")
        return
    if sys.stdout.isatty():
        _print_table(found, search)
    else:
        _print_plain(found)


def price_caption() -> str:
    """Prices per request and per image; plain arithmetic keeps Decimal out of start-up."""
    from soulcli.constants import IMAGES_PER_REQUEST, PRICE_PTC_TEXT

    parts = [
        f"{quality}: {text} PTC per request of {IMAGES_PER_REQUEST} images "
        f"({float(text) / IMAGES_PER_REQUEST:g} PTC per image)"
        for quality, text in PRICE_PTC_TEXT.items()
    ]
    return "Price · " + " · ".join(parts)


def _print_plain(found: list[Style]) -> None:
    """Aligned columns without Rich: for pipes, pagers and grep (and a faster start)."""
    from soulcli import ui

    rows = [("NAME", "ID", "PREVIEW")] + [(s.name, s.id, s.preview_url) for s in found]
    width = max(len(name) for name, _, _ in rows)
    for name, ident, preview in rows:
        ui.emit(f"{name:<{width}}  {ident:<36}  {preview}")
    ui.emit(price_caption())


def _print_table(found: list[Style], search: str | None) -> None:
    import re

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    table = Table(
        title=f"Soul styles ({len(found)})", caption=price_caption(), caption_justify="left"
    )
    table.add_column("Name", no_wrap=True)
    table.add_column("ID", no_wrap=True, style="dim")
    table.add_column("Preview", overflow="fold")
    pattern = (
        re.compile(re.escape(search.strip()), re.IGNORECASE) if search and search.strip() else None
    )
    for style in found:
        name, ident = Text(style.name), Text(style.id)
        if pattern is not None:
            name.highlight_regex(pattern, style="bold magenta")
            ident.highlight_regex(pattern, style="bold magenta")
        table.add_row(name, ident, style.preview_url)
    console.print(table)


app = new_app()
app.command()(styles)
