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
            "--search",
            "-S",
            metavar="TEXT",
            help="Only styles whose name contains TEXT (or whose id starts with it).",
        ),
    ] = None,
    wide: Annotated[
        bool,
        typer.Option(
            "--wide", help="Plain columns with the full preview URLs (prices in the footer)."
        ),
    ] = False,
    no_pager: Annotated[
        bool, typer.Option("--no-pager", help="Do not page long output on a terminal.")
    ] = False,
    json_: JsonFlag = False,
    show: Annotated[
        bool,
        typer.Option(
            "--show",
            help="Show each style's preview image with its name (downloaded once, kept "
            "in the cache); piped, print the cached previews' paths.",
        ),
    ] = False,
) -> None:
    """List the styles you can pass to --style, with the price of each quality.

    On a terminal: name, price per request of 4 images at 720p and 1080p, id, and a
    preview link, as many columns as fit; long lists go through PAGER (less -FRX).
    Piped: aligned plain columns NAME, ID, PREVIEW (the price line goes to stderr).

    \b
    Examples:
      soul styles --search y2k
      soul styles --search cam --show
      soul styles --json | jq -r '.[].name'
    """
    from soulcli import ui
    from soulcli.catalog import load_styles, search_styles

    found = list(search_styles(search)) if search else list(load_styles())
    if json_:
        prices = price_per_quality()
        ui.emit_json(
            [
                {"id": s.id, "name": s.name, "preview_url": s.preview_url, "price_ptc": prices}
                for s in found
            ]
        )
        return
    if not found:
        ui.say(f"soul: no style matches {search!r}; run `soul styles` for all {len(load_styles())}")
        return
    if show:
        show_previews(found)
        return
    if sys.stdout.isatty() and not wide:
        _print_table(found, search, pager=not no_pager)
    else:
        _print_plain(found, pager=not no_pager)


def show_previews(found: list[Style]) -> None:
    """The styles' preview images as a labelled grid; a preview that could not be
    downloaded is a placeholder tile, not an error."""
    from soulcli import ui
    from soulcli.commands.show import show_pictures
    from soulcli.previews import cached_previews
    from soulcli.terminal_images import Picture

    paths = cached_previews(found)
    missing = [s.name for s in found if paths.get(s.id) is None]
    if missing:
        ui.warn(
            f"no preview for {len(missing)} of {len(found)} styles (offline?): "
            + ", ".join(missing[:3])
            + (" ..." if len(missing) > 3 else "")
        )
    pictures = [
        Picture(paths.get(s.id), s.name, "" if paths.get(s.id) else "no preview") for s in found
    ]
    # A long list scrolls as text would; each preview a small tile, as many to a row as fit.
    show_pictures(pictures, fit_height=False, max_tile=22)


def price_per_quality() -> dict[str, float]:
    """PTC per request of 4 images, by quality (floats: JSON readers want numbers)."""
    from soulcli.constants import PRICE_PTC_TEXT

    return {quality: float(text) for quality, text in PRICE_PTC_TEXT.items()}


def price_caption() -> str:
    """Prices per request and per image; plain arithmetic keeps Decimal out of start-up."""
    from soulcli.constants import IMAGES_PER_REQUEST, PRICE_PTC_TEXT

    parts = [
        f"{quality}: {text} PTC ({float(text) / IMAGES_PER_REQUEST:g} PTC per image)"
        for quality, text in PRICE_PTC_TEXT.items()
    ]
    return f"Price per request of {IMAGES_PER_REQUEST} images · " + " · ".join(parts)


def _print_plain(found: list[Style], *, pager: bool) -> None:
    """Aligned columns without Rich: for pipes, pagers and grep (and a faster start)."""
    from soulcli import ui
    from soulcli.tables import plain_lines

    lines = plain_lines(["NAME", "ID", "PREVIEW"], [[s.name, s.id, s.preview_url] for s in found])
    ui.page("\n".join(lines) + "\n", allowed=pager)
    ui.say(price_caption())  # talk, not data: `soul styles | cut` sees only the rows


def _print_table(found: list[Style], search: str | None, *, pager: bool) -> None:
    import re

    from rich.console import Console
    from rich.text import Text

    from soulcli import ui
    from soulcli.constants import PRICE_PTC_TEXT
    from soulcli.tables import Column, fitted_lines

    pattern = (
        re.compile(re.escape(search.strip()), re.IGNORECASE) if search and search.strip() else None
    )
    prices = list(PRICE_PTC_TEXT.values())  # the same for every style: per quality
    rows: list[list[str | Text]] = []
    for style in found:
        name, ident = Text(style.name), Text(style.id, style="dim")
        if pattern is not None:
            name.highlight_regex(pattern, style="bold magenta")
            ident.highlight_regex(pattern, style="bold magenta")
        # The link's text stays short; terminals that know OSC 8 open the URL on click.
        preview = Text("preview", style=f"link {style.preview_url}") if style.preview_url else ""
        rows.append([name, *prices, ident, preview])
    columns = [
        Column("Name"),
        *(Column(quality, justify="right") for quality in PRICE_PTC_TEXT),
        Column("ID", drop=2),
        Column("Preview", drop=3),
    ]
    console = Console(highlight=False)
    title = f"Soul styles ({len(found)})"
    with console.capture() as captured:
        console.print(title, style="italic")
        for line in fitted_lines(columns, rows, console.width):
            console.print(line)
        console.print(price_caption(), style="dim", overflow="fold")
    ui.page(captured.get(), allowed=pager)


app = new_app()
app.command()(styles)
