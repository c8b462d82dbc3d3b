"""`soul styles`: the style catalog with prices; works offline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

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
    _print_table(found, search)


def price_caption() -> str:
    from soulcli.models import IMAGES_PER_REQUEST, PRICE_PTC, format_ptc

    parts = [
        f"{quality}: {format_ptc(price)} PTC per request of {IMAGES_PER_REQUEST} images "
        f"({format_ptc(price / IMAGES_PER_REQUEST)} PTC per image)"
        for quality, price in PRICE_PTC.items()
    ]
    return "Price · " + " · ".join(parts)


def _print_table(found: list[Style], search: str | None) -> None:
    import re
    import sys

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Piped output keeps whole rows (no wrapping at 80 columns) so grep and cut work.
    console = Console(highlight=False) if sys.stdout.isatty() else Console(width=400)
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
