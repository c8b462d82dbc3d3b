"""`soul gallery`: write the ledger's tasks as one static web page, and print its path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from soulcli.commands import new_app

if TYPE_CHECKING:
    from soulcli.ledger import TaskRecord


def gallery(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="The gallery's folder: new, empty, or one soul gallery wrote before. "
            "Default: gallery/ in soul's data directory.",
            show_default=False,
        ),
    ] = None,
    open_page: Annotated[
        bool,
        typer.Option("--open", help="Open the page in the default web browser."),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="AGE|DATE",
            help="Only tasks from this age (7d, 12h) or date (2026-11-01) on.",
            show_default=False,
        ),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(
            "--search",
            "-S",
            metavar="TEXT",
            help="Only tasks whose prompt contains TEXT (or whose task id is TEXT).",
            show_default=False,
        ),
    ] = None,
    style: Annotated[
        str | None,
        typer.Option(
            "--style",
            "-s",
            metavar="NAME",
            help="Only tasks in this style (a name, part of one, or a style id).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write every task you paid for as cards on one web page, and print its path.

    Each card has the thumbnails (each links to the full image), the prompt, style,
    ratio, quality, seed, date, price and task id, and a button that copies the
    command to make it again. The page searches and filters by style itself, and
    loads nothing from the network. Thumbnails are made once; a rebuild after new
    tasks makes only theirs.

    \b
    Examples:
      soul gallery --open
      soul gallery --since 7d -s Tokyo
      soul gallery -S dog -o ~/dogs
    """
    from soulcli import ui
    from soulcli.gallery import build
    from soulcli.models import format_ptc

    folder = out if out is not None else _default_folder()
    records, sweeps, filters = _tasks(since, search, style)
    report = build(folder, records, sweeps, filters=filters, complete=not filters)
    missing = f" ({report.missing} missing)" if report.missing else ""
    ui.say(
        f"soul: gallery of {report.tasks} task{'s' if report.tasks != 1 else ''}, "
        f"{report.images} image{'s' if report.images != 1 else ''}{missing}, "
        f"{format_ptc(report.spent)} PTC · {report.thumbs_made} new thumbnail"
        f"{'s' if report.thumbs_made != 1 else ''}"
    )
    ui.emit(str(report.page))
    if open_page:
        import webbrowser

        if not webbrowser.open(report.page.as_uri()):
            ui.warn(f"no web browser to open; open {report.page} yourself")


def _default_folder() -> Path:
    from soulcli.paths import data_dir

    return data_dir() / "gallery"


def _tasks(
    since: str | None, search: str | None, style: str | None
) -> tuple[list[TaskRecord], set[int], str]:
    """The tasks the page shows (those the server took), the sweeps, and the filters said."""
    from soulcli.commands.history import parse_since
    from soulcli.ledger import Ledger

    cutoff = parse_since(since) if since else None
    style_id = None
    if style is not None:
        from soulcli.catalog import resolve_style

        style_id = resolve_style(style).id
    with Ledger.open() as ledger:
        records = ledger.search(text=search, since=cutoff)
        sweeps = ledger.batches_from("sweep")
    # A request the server refused, or never got, cost nothing and made nothing.
    records = [r for r in records if r.charged]
    if style_id is not None:
        records = [r for r in records if r.style_id == style_id]
    said = [
        f"{name} {value}"
        for name, value in (("--since", since), ("--search", search), ("--style", style))
        if value
    ]
    return records, sweeps, " ".join(said)


app = new_app()
app.command()(gallery)
