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
    from soulcli.gallery_page import plural
    from soulcli.models import format_ptc

    folder = out if out is not None else _default_folder()
    records, sweeps, filters = _tasks(since, search, style)
    report = build(
        folder,
        records,
        sweeps,
        filters=filters,
        complete=not filters,
        waiting=lambda: ui.say(f"soul: waiting for another soul gallery writing to {folder}"),
    )
    missing = f" ({report.missing} missing)" if report.missing else ""
    ui.say(
        f"soul: gallery of {plural(report.tasks, 'task')}, "
        f"{plural(report.images, 'image')}{missing}, "
        f"{format_ptc(report.spent)} PTC · {plural(report.thumbs_made, 'new thumbnail')}"
    )
    ui.emit(str(report.page))
    if open_page and not open_in_browser(report.page.as_uri()):
        ui.warn(f"found no web browser to open it with; open {report.page} yourself")


def open_in_browser(uri: str) -> bool:
    """Open `uri` in a graphical web browser without waiting for it; False if none.

    `$BROWSER` is honoured as `webbrowser` does, but started on its own with no
    terminal, so it neither holds soul up nor writes over soul's output. Without it,
    the standard library picks the browser, except that a text one (lynx, w3m) would
    take over the terminal: with no display to open a window on, nothing is opened.
    """
    import os
    import shlex
    import subprocess
    import sys
    import webbrowser

    for entry in filter(None, os.environ.get("BROWSER", "").split(os.pathsep)):
        words = shlex.split(entry)
        words = [uri if w == "%s" else w for w in words] + ([] if "%s" in words else [uri])
        try:
            started = subprocess.Popen(
                words,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            continue  # no such program: the next one in $BROWSER
        try:
            # A launcher (xdg-open) hands over and exits at once; a browser stays.
            if started.wait(timeout=1.0) == 0:
                return True
        except subprocess.TimeoutExpired:
            return True
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        return webbrowser.open(uri)
    except webbrowser.Error:
        return False


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
