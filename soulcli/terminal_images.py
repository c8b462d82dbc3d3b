"""Images in the terminal: labelled grids drawn by textual-image (Kitty, Sixel, half blocks).

Each row of the grid is composed into one picture with Pillow and drawn as one image,
with the tiles' labels on a text line under it: a Sixel or Kitty image cannot sit in a
table cell, and one image per row is also fewer escape sequences. The terminal
protocol itself is textual-image's; soul writes none by hand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image as PILImage
    from rich.console import Console

PROTOCOLS = ("auto", "kitty", "sixel", "halfblock")
GAP_CELLS = 2  # between two tiles of a row
TILE_PX = 320  # each tile's width in the composed row: sharp on Kitty and Sixel, cheap


@dataclass
class Picture:
    """One tile: an image file (None for a placeholder) and the line under it."""

    path: Path | None
    label: str
    status: str = ""  # for a placeholder: why there is no image (nsfw, not on disk)


def renderer(protocol: str) -> Any:
    """textual-image's renderable class for a protocol; `auto` asks the terminal."""
    # textual-image logs a warning when the terminal does not say its cell size (tmux,
    # pipes) and then assumes one: not the user's concern.
    logging.getLogger("textual_image").addHandler(logging.NullHandler())
    logging.getLogger("textual_image").propagate = False
    if protocol == "kitty":
        from textual_image.renderable.tgp import Image as TGPImage

        return TGPImage
    if protocol == "sixel":
        from textual_image.renderable.sixel import Image as SixelImage

        return SixelImage
    if protocol == "halfblock":
        from textual_image.renderable.halfcell import Image as HalfcellImage

        return HalfcellImage
    from textual_image.renderable import HalfcellImage, Image, UnicodeImage

    # Without a terminal to ask, textual-image picks plain Unicode, which has no colour.
    return HalfcellImage if Image is UnicodeImage else Image


def columns_for(count: int, width: int, *, wanted: int | None = None) -> int:
    """How many tiles side by side: 2 for a task's 4 images, more on a wide terminal,
    never so many that a tile is narrower than 16 cells."""
    if wanted is not None:
        return max(1, min(wanted, count))
    most = max(1, (width + GAP_CELLS) // (16 + GAP_CELLS))
    if count <= 4:
        return max(1, min(2, count, most))
    return max(1, min(count, most, 6))


def _load(picture: Picture, box: tuple[int, int]) -> PILImage.Image:
    """The picture fitted into `box` (letterboxed), or a grey placeholder."""
    from PIL import Image, ImageOps

    if picture.path is not None:
        try:
            with Image.open(picture.path) as image:
                image.draft("RGB", box)  # JPEG: decode at the size needed, not the full one
                return ImageOps.pad(image.convert("RGB"), box, color=(0, 0, 0))
        except (OSError, ValueError):
            picture.status = picture.status or "unreadable"
    return Image.new("RGB", box, (70, 70, 70))


def _aspect(pictures: list[Picture]) -> float:
    """Height over width of the first readable picture (a task's images share one)."""
    from PIL import Image

    for picture in pictures:
        if picture.path is None:
            continue
        try:
            with Image.open(picture.path) as image:
                return image.height / image.width
        except (OSError, ValueError, ZeroDivisionError):
            continue
    return 1.0


def row_image(pictures: list[Picture], columns: int, cell_width: int) -> PILImage.Image:
    """One row of tiles as one picture, spaced like the label line under it."""
    from PIL import Image

    tile_h = max(1, round(TILE_PX * _aspect(pictures)))
    gap_px = round(TILE_PX * GAP_CELLS / max(1, cell_width))
    width = columns * TILE_PX + (columns - 1) * gap_px
    row = Image.new("RGB", (width, tile_h), (0, 0, 0))
    for number, picture in enumerate(pictures):
        row.paste(_load(picture, (TILE_PX, tile_h)), (number * (TILE_PX + gap_px), 0))
    return row


def label_line(pictures: list[Picture], cell_width: int) -> str:
    """The labels of a row, each cut to its tile's width and placed under it."""
    from soulcli.text import shorten

    parts = []
    for picture in pictures:
        text = picture.label + (f" ({picture.status})" if picture.status else "")
        parts.append(shorten(text, cell_width).ljust(cell_width))
    return (" " * GAP_CELLS).join(parts).rstrip()


def render(
    pictures: list[Picture],
    console: Console,
    *,
    protocol: str = "auto",
    columns: int | None = None,
    fit_height: bool = True,
    max_tile: int | None = None,
) -> None:
    """Draw the pictures as a grid of labelled tiles on `console`, row by row; with
    `fit_height`, small enough for the whole grid to fit the screen; with `max_tile`,
    as many tiles to a row as fit at that width (in cells) at most."""
    from rich.text import Text

    image_class = renderer(protocol)
    width = console.width
    if max_tile is not None and columns is None:
        columns = max(1, (width + GAP_CELLS) // (max_tile + GAP_CELLS))
    count = columns_for(len(pictures), width, wanted=columns)
    rows = -(-len(pictures) // count)
    cell_width = max(1, (width - GAP_CELLS * (count - 1)) // count)
    if max_tile is not None:
        cell_width = min(cell_width, max_tile)
    # The whole grid fits the screen's height too (a cell is about twice as tall as it
    # is wide): four square tiles at 120 columns would otherwise be 60 lines tall.
    if fit_height:
        room = max(8, console.height - 2) // rows - 1  # each row's label takes a line
        cell_width = max(8, min(cell_width, int(room * 2 / _aspect(pictures))))
    for start in range(0, len(pictures), count):
        row = pictures[start : start + count]
        row_cells = len(row) * cell_width + GAP_CELLS * (len(row) - 1)
        composed = row_image(row, len(row), cell_width)
        console.print(image_class(composed, width=row_cells, height="auto"))
        console.print(Text(label_line(row, cell_width), no_wrap=True, overflow="ellipsis"))
