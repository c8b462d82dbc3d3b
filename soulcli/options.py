"""Command-line options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer

from soulcli.constants import ASPECT_RATIOS, QUALITIES, QUALITY_ALIASES, SEED_MAX, SEED_MIN


def complete_style(incomplete: str) -> list[str]:
    """Shell completion for --style: catalog names starting with what was typed."""
    import os

    from soulcli.catalog import load_styles

    typed = incomplete.replace("\\ ", " ").lower()
    names = [s.name for s in load_styles() if s.name.lower().startswith(typed)]
    if os.environ.get("_SOUL_COMPLETE") == "complete_bash":
        # bash inserts a candidate as typed: escape spaces so it stays one word
        # (zsh and fish quote candidates themselves).
        names = [name.replace(" ", "\\ ") for name in names]
    return names


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of text.")]
OutDir = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        metavar="DIR",
        help="Directory for the images (default: config out_dir, else the current directory).",
    ),
]
StyleOption = Annotated[
    str | None,
    typer.Option(
        "--style",
        "-s",
        metavar="NAME|UUID",
        autocompletion=complete_style,
        help="Style name (case-insensitive, unique prefix or word) or style UUID; "
        "see `soul styles`.",
    ),
]
RatioOption = Annotated[
    str | None,
    typer.Option(
        "--ar",
        "-a",
        metavar="RATIO",
        click_type=click.Choice(ASPECT_RATIOS),
        help="Aspect ratio: " + ", ".join(ASPECT_RATIOS) + " (default 1:1).",
    ),
]
QualityOption = Annotated[
    str | None,
    typer.Option(
        "--quality",
        "-q",
        metavar="720p|1080p",
        click_type=click.Choice([*QUALITIES, *QUALITY_ALIASES], case_sensitive=False),
        help="720p (alias basic, 0.1 PTC) or 1080p (alias high, 0.2 PTC); default 720p.",
    ),
]
SeedOption = Annotated[
    int | None,
    typer.Option(
        "--seed",
        metavar="N",
        # The range is checked when the request is built (as for a batch line's seed),
        # which keeps Click's "[1<=x<=1000000]" out of the help.
        help=f"Seed from {SEED_MIN} to {SEED_MAX} for a repeatable result; "
        "soul picks one and reports it when omitted.",
    ),
]
NegativeOption = Annotated[
    str | None,
    # No short flag: -n is `--limit` in `soul history`, as in `head -n`.
    typer.Option("--negative", metavar="TEXT", help="What the images should not show."),
]
EnhanceOption = Annotated[
    bool | None,
    typer.Option(
        "--enhance/--no-enhance", help="Let the service rewrite the prompt (default off)."
    ),
]


def _positive_seconds(value: float | None) -> float | None:
    # A callback, not `min=`: Click would print "[x>=0.1]" in the help.
    if value is not None and not value >= 0.1:
        raise typer.BadParameter(f"{value:g} is not a wait of 0.1 seconds or more")
    return value


TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        callback=_positive_seconds,
        help="Overall wait limit (default 900); the task keeps running and can be resumed.",
    ),
]
YesOption = Annotated[
    bool,
    typer.Option("--yes", "-y", help="Do not ask before spending more than confirm_above."),
]

ShowOption = Annotated[
    bool | None,
    typer.Option(
        "--show/--no-show",
        help="Show the images in the terminal once saved (default: config show).",
        show_default=False,
    ),
]

ConcurrencyOption = Annotated[
    int, typer.Option("--concurrency", "-c", min=1, max=32, help="Tasks in flight at once.")
]
