"""Images in the terminal: labelled grids drawn by textual-image (Kitty, Sixel, half blocks).

Each row of the grid is composed into one picture with Pillow and drawn as one image,
with the tiles' labels on a text line under it: a Sixel or Kitty image cannot sit in a
table cell, and one image per row is also fewer escape sequences. The terminal
protocol itself is textual-image's; soul writes none by hand.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import Future

    from PIL import Image as PILImage
    from rich.console import Console

PROTOCOLS = ("auto", "kitty", "sixel", "halfblock")
GAP_CELLS = 2  # between two tiles of a row
TILE_PX = 320  # each tile's width in the composed row: sharp on Kitty and Sixel, cheap
# Kitty's Unicode placeholders number columns up to 297: wider, textual-image refuses.
KITTY_MOST = 297


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
    # Asking the terminal needs its answer on stdin: not when stdin is a pipe or a
    # file, nor when the protocol is given (each question costs up to 0.1 s).
    ask = protocol == "auto" and sys.stdin is not None and sys.stdin.isatty()
    package = _renderables(ask)
    if not ask:
        _assume_cell_size()
    if protocol == "kitty":
        return package.TGPImage
    if protocol == "sixel":
        return package.SixelImage
    if protocol == "halfblock":
        return package.HalfcellImage
    # Without a terminal to ask, textual-image picks plain Unicode, which has no colour.
    return package.HalfcellImage if package.Image is package.UnicodeImage else package.Image


def _renderables(ask: bool) -> Any:
    """textual_image.renderable, which questions the terminal as it is imported: with
    `ask` False (or if the questions fail) it is imported as if stdout were no terminal."""
    import importlib

    name = "textual_image.renderable"
    if name in sys.modules:
        return sys.modules[name]
    if ask:
        try:
            return importlib.import_module(name)
        except Exception:  # a terminal that answers oddly: draw half blocks instead
            for loaded in [m for m in sys.modules if m.startswith(name)]:
                del sys.modules[loaded]
    real = sys.__stdout__
    sys.__stdout__ = _NoTerminal(real)  # type: ignore[misc,assignment]
    try:
        return importlib.import_module(name)
    finally:
        sys.__stdout__ = real  # type: ignore[misc]


class _NoTerminal:
    """A stand-in for stdout that says it is no terminal (for one import)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _assume_cell_size() -> None:
    """Tell textual-image the cell size without asking the terminal (which needs stdin):
    the kernel's window size if it knows pixels, else the usual 10 x 20."""
    from textual_image import _terminal

    if hasattr(_terminal.get_cell_size, "_result"):
        return
    width, height = 10, 20
    try:
        import fcntl
        import struct
        import termios

        packed = fcntl.ioctl(sys.stdout.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        rows, columns, pixels_wide, pixels_high = struct.unpack("HHHH", packed)
        if rows and columns and pixels_wide and pixels_high:
            width, height = pixels_wide // columns, pixels_high // rows
    except (OSError, ValueError, ImportError):
        pass
    _terminal.get_cell_size._result = _terminal.CellSize(width, height)  # type: ignore[attr-defined]


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

    from soulcli.sheet import fitted

    if picture.path is not None:
        # The contact sheet's decoder: any mode (palette, 16-bit, alpha), EXIF turns,
        # JPEG decoded at the size needed, huge files refused.
        image = fitted(picture.path, box)
        if not isinstance(image, str):
            return ImageOps.pad(image, box, color=(0, 0, 0))
        picture.status = picture.status or "unreadable"
    return Image.new("RGB", box, (70, 70, 70))


def _aspect(pictures: list[Picture]) -> float:
    """Height over width of the first readable picture (a task's images share one),
    kept between 1:4 and 4:1 so that a strip of pixels cannot make a giant tile."""
    from PIL import Image

    for picture in pictures:
        if picture.path is None:
            continue
        try:
            with Image.open(picture.path) as image:
                return min(4.0, max(0.25, image.height / image.width))
        except (OSError, ValueError, ZeroDivisionError, Image.DecompressionBombError):
            continue
    return 1.0


def row_image(tiles: list[PILImage.Image], cell_width: int) -> PILImage.Image:
    """One row of tiles as one picture, spaced like the label line under it."""
    from PIL import Image

    gap_px = round(TILE_PX * GAP_CELLS / max(1, cell_width))
    tile_h = tiles[0].height
    width = len(tiles) * TILE_PX + (len(tiles) - 1) * gap_px
    row = Image.new("RGB", (width, tile_h), (0, 0, 0))
    for number, tile in enumerate(tiles):
        row.paste(tile, (number * (TILE_PX + gap_px), 0))
    return row


def load_all(pictures: list[Picture]) -> list[PILImage.Image]:
    """Every picture fitted to a tile, decoded on threads (Pillow lets go of the GIL
    while it decodes: four 1152 px PNGs take half the time on two cores)."""
    return start_loading(pictures).result()


def start_loading(pictures: list[Picture]) -> Future[list[PILImage.Image]]:
    """Begin decoding the pictures in the background: the caller imports Rich and the
    renderer meanwhile, on the other core."""
    from concurrent.futures import ThreadPoolExecutor

    box = (TILE_PX, max(1, round(TILE_PX * _aspect(pictures))))
    pool = ThreadPoolExecutor(max_workers=4)
    futures = [pool.submit(_load, picture, box) for picture in pictures]
    pool.shutdown(wait=False)  # the threads end with their work; results below
    collector = ThreadPoolExecutor(max_workers=1)
    done = collector.submit(lambda: [future.result() for future in futures])
    collector.shutdown(wait=False)
    return done


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
    loading: Future[list[PILImage.Image]] | None = None,
) -> None:
    """Draw the pictures as a grid of labelled tiles on `console`, row by row (their
    decoding begun already if `loading` is given); with
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
    tiles = loading.result() if loading is not None else load_all(pictures)
    for start in range(0, len(pictures), count):
        row = pictures[start : start + count]
        row_cells = len(row) * cell_width + GAP_CELLS * (len(row) - 1)
        composed = row_image(tiles[start : start + count], cell_width)
        try:
            drawn = image_class(composed, width=min(row_cells, KITTY_MOST), height="auto")
        except ValueError:  # more than a protocol can place: half blocks draw anything
            drawn = renderer("halfblock")(composed, width=row_cells, height="auto")
        console.print(drawn, soft_wrap=True)  # lines are cut to width already: no rewrap
        console.print(Text(label_line(row, cell_width), no_wrap=True, overflow="ellipsis"))
