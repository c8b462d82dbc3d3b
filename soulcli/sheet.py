"""Contact sheets: many images in one PNG grid, each labelled, under the prompt as a title."""

from __future__ import annotations

import json
import math
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from soulcli.text import one_line

if TYPE_CHECKING:
    from concurrent.futures import Future

    from PIL import Image, ImageFont

    from soulcli.ledger import TaskRecord

    Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

NOT_ON_DISK = "not on disk"
NOT_DELIVERED = "not delivered"
UNREADABLE = "unreadable"

MAX_COLUMNS = 10
MAX_CELL = 512  # the widest a tile gets (two columns of 1152 px images)
MIN_CELL = 64
# The sheet's width for many columns: 8 columns of about 320 px. Wider sheets (the hard
# limit is 4096 px) took longer to encode than decoding all 60 images did.
WIDTH_BUDGET = 2600
# Beyond this many tiles the cells shrink too, so a sheet of hundreds stays a few
# tens of megapixels in memory instead of hundreds.
FULL_SIZE_TILES = 100
# A cell takes the first image's shape, within these bounds ("square-ish").
MIN_ASPECT, MAX_ASPECT = 2 / 3, 3 / 2

BACKGROUND = (24, 24, 24)
PLACEHOLDER = (78, 78, 78)
TEXT = (230, 230, 230)
MUTED = (170, 170, 170)


@dataclass
class Tile:
    """One cell of a sheet: an image file, or (path None) a grey placeholder with a status."""

    path: Path | None
    label: str
    status: str = ""


@dataclass(frozen=True)
class Grid:
    """Where everything goes on a sheet; all in pixels."""

    count: int
    columns: int
    cell_width: int  # the image area of a tile
    cell_height: int
    label_height: int  # the band under each tile
    title_height: int  # the band on top (0: no title)
    gap: int

    @property
    def rows(self) -> int:
        return max(1, math.ceil(self.count / self.columns))

    @property
    def size(self) -> tuple[int, int]:
        width = self.gap + self.columns * (self.cell_width + self.gap)
        height = self.title_height + self.gap
        height += self.rows * (self.cell_height + self.label_height + self.gap)
        return width, height

    def image_box(self, index: int) -> tuple[int, int, int, int]:
        """The image area of tile `index` (0-based): left, top, right, bottom."""
        row, column = divmod(index, self.columns)
        left = self.gap + column * (self.cell_width + self.gap)
        top = self.title_height + self.gap + row * (self.cell_height + self.label_height + self.gap)
        return left, top, left + self.cell_width, top + self.cell_height

    def label_box(self, index: int) -> tuple[int, int, int, int]:
        """The label band under tile `index`."""
        left, _, right, bottom = self.image_box(index)
        return left, bottom, right, bottom + self.label_height

    @property
    def label_size(self) -> int:
        return max(9, min(20, self.cell_width // 22))

    @property
    def title_size(self) -> int:
        return max(14, min(32, self.size[0] // 48))


def default_columns(count: int) -> int:
    """2 for up to 4 tiles, else about the square root, at most MAX_COLUMNS."""
    if count <= 4:
        return max(1, min(2, count))
    return min(MAX_COLUMNS, math.ceil(math.sqrt(count)))


def plan_grid(
    count: int, *, columns: int | None = None, aspect: float = 1.0, titled: bool = True
) -> Grid:
    """The layout for `count` tiles of images `aspect` wide per unit of height."""
    if count < 1:
        raise ValueError("a sheet needs at least one tile")
    columns = default_columns(count) if columns is None else columns
    columns = max(1, min(columns, MAX_COLUMNS, count))
    gap = 12 if columns <= 4 else 8
    cell = (WIDTH_BUDGET - gap * (columns + 1)) // columns
    if count > FULL_SIZE_TILES:
        cell = int(cell * math.sqrt(FULL_SIZE_TILES / count))
    cell_width = max(MIN_CELL, min(MAX_CELL, cell))
    aspect = max(MIN_ASPECT, min(MAX_ASPECT, aspect))
    label = max(9, min(20, cell_width // 22))
    grid = Grid(
        count=count,
        columns=columns,
        cell_width=cell_width,
        cell_height=round(cell_width / aspect),
        label_height=round(label * 1.8),
        title_height=0,
        gap=gap,
    )
    if titled:
        grid = Grid(**{**grid.__dict__, "title_height": round(grid.title_size * 2.2)})
    return grid


def make_sheet(
    tiles: list[Tile],
    *,
    title: str | None = None,
    columns: int | None = None,
    warn: Callable[[str], None] | None = None,
) -> Image.Image:
    """Lay `tiles` out in order in a grid under `title`; an RGB image.

    Each image is decoded at about the cell's size (JPEG's draft mode) and shrunk into
    its cell keeping its shape, never enlarged. A file that cannot be read becomes a
    placeholder tile and is reported through `warn` (the core never prints).
    """
    from PIL import Image, ImageDraw

    grid = plan_grid(
        len(tiles), columns=columns, aspect=_first_aspect(tiles), titled=title is not None
    )
    sheet = Image.new("RGB", grid.size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    label_font = _font(grid.label_size)
    status_font = _font(max(grid.label_size, min(28, grid.cell_width // 14)))
    box = (grid.cell_width, grid.cell_height)
    for index, (tile, fitted) in enumerate(zip(tiles, _fitted_all(tiles, box), strict=True)):
        left, top, right, bottom = grid.image_box(index)
        status = tile.status or "missing"
        if isinstance(fitted, str):
            status = UNREADABLE
            if warn is not None:
                warn(f"cannot read {tile.path}: {fitted}")
            fitted = None
        if fitted is None:
            draw.rectangle((left, top, right - 1, bottom - 1), fill=PLACEHOLDER)
            text = fit_text(status, status_font, grid.cell_width - 16)
            draw.text(((left + right) / 2, (top + bottom) / 2), text, TEXT, status_font, "mm")
        else:
            # Centred: a shape unlike the cell's is letterboxed in the background colour.
            x = left + (grid.cell_width - fitted.width) // 2
            y = top + (grid.cell_height - fitted.height) // 2
            sheet.paste(fitted, (x, y))
            fitted.close()
        label_left, label_top, label_right, label_bottom = grid.label_box(index)
        label = fit_text(tile.label, label_font, label_right - label_left - 8)
        draw.text((label_left + 4, (label_top + label_bottom) / 2), label, MUTED, label_font, "lm")
    if title is not None:
        title_font = _font(grid.title_size)
        text = fit_text(title, title_font, grid.size[0] - 2 * grid.gap)
        draw.text((grid.gap, grid.title_height / 2 + grid.gap / 2), text, TEXT, title_font, "lm")
    return sheet


def write_sheet(image: Image.Image, path: Path) -> Path:
    """Save `image` as a PNG at `path` atomically: a temp file beside it, fsync, rename.

    A reader never sees half a sheet, and a failed write leaves no temp file behind.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as handle:
            # Fast zlib settings (level 1, run-length matches after PNG's filters): a
            # contact sheet is a preview. For 60 tiles Pillow's default took 7 times as
            # long (2.7 s, more than decoding all 60 images) for a file 10% smaller.
            image.save(handle, format="PNG", compress_level=1, compress_type=zlib.Z_RLE)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def tile_label(style: str | None, seed: object, index: object) -> str:
    """`Tokyo streetstyle · seed 42 · #1`, from what is known of an image."""
    parts = [one_line(style, 80)] if style else []
    if seed is not None:
        parts.append(f"seed {seed}")
    if index is not None:
        parts.append(f"#{index}")
    return " · ".join(parts)


def tiles_for_record(record: TaskRecord, base: Path | None = None) -> list[Tile]:
    """A ledger task's tiles, by image index (4 or more): its saved images, and placeholders
    with their status for the ones not delivered, not saved, or no longer on disk.

    A relative path (a hand-edited ledger) is taken from `base`, else the current directory.
    """
    from soulcli.ledger import FINAL

    by_index: dict[int, dict[str, Any]] = {}
    for image in record.images:
        try:
            by_index[int(image["index"])] = image
        except (KeyError, TypeError, ValueError):
            continue  # a row written by a soul that did not know the index: nothing to place
    tiles = []
    for index in range(1, max(4, *by_index, 0) + 1):
        label = tile_label(record.style_name, record.seed, index)
        saved = by_index.get(index)
        if saved is None:  # not delivered yet (the task's state says so), or never will be
            ended = record.state in FINAL
            tiles.append(Tile(None, label, NOT_DELIVERED if ended else record.state))
        elif not saved.get("path") or not isinstance(saved["path"], str):
            tiles.append(Tile(None, label, one_line(saved.get("status") or "not saved", 40)))
        elif not (path := (base or Path.cwd()) / saved["path"]).is_file():
            tiles.append(Tile(None, label, NOT_ON_DISK))
        else:
            tiles.append(Tile(path.absolute(), label))
    return tiles


def tile_for_path(path: Path) -> Tile:
    """An image file's tile, labelled from the sidecar beside it, else with its file name."""
    path = Path(path)
    data = read_metadata(path)
    label = ""
    if data is not None:
        style = data.get("style")
        name = style.get("name") if isinstance(style, dict) else None
        label = tile_label(
            name if isinstance(name, str) else None, data.get("seed"), data.get("index")
        )
    if not path.is_file():
        return Tile(None, label or path.name, NOT_ON_DISK)
    return Tile(path, label or path.name)


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The sidecar (NAME.json) beside an image as a dict, or None if there is none to read."""
    from soulcli.sidecar import sidecar_path

    candidate = sidecar_path(Path(path))
    if candidate == Path(path):
        return None
    try:
        data = json.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def prompt_for_path(path: Path) -> str | None:
    """The prompt an image was made from, from its sidecar, if it has one."""
    data = read_metadata(path)
    prompt = data.get("prompt") if data is not None else None
    return prompt if isinstance(prompt, str) else None


def record_stem(record: TaskRecord) -> str:
    """The stem a task's image files share: its --name, else its task id (as made safe
    for file names when they were saved), else `task-N` for a task that never got one."""
    if record.image_stem:
        return record.image_stem
    if record.remote_id:
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", record.remote_id).strip("_")[:80]
        if stem:
            return stem
    return f"task-{record.id}"


def fit_text(text: str, font: Font, width: float) -> str:
    """`text` on one line, cut with an ellipsis to fit `width` pixels in `font`."""
    text = one_line(text, 500)
    if font.getlength(text) <= width:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest start that fits with the ellipsis
        middle = (low + high + 1) // 2
        if font.getlength(text[:middle].rstrip() + "…") <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + "…" if low else ""


def _font(size: int) -> Font:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):  # Pillow built without FreeType: its small bitmap font
        return ImageFont.load_default()


def _first_aspect(tiles: list[Tile]) -> float:
    """The shape (width / height) of the first readable image, from its header only."""
    from PIL import Image

    for tile in tiles:
        if tile.path is None:
            continue
        try:
            with Image.open(tile.path) as image:
                width, height = image.size
                if _orientation(image) in _QUARTER_TURNS:
                    width, height = height, width
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
        if width > 0 and height > 0:
            return width / height
    return 1.0


# EXIF orientations that turn the picture a quarter: its width and height swap.
_QUARTER_TURNS = (5, 6, 7, 8)


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError):
        return 1
    return value if isinstance(value, int) else 1


def _fitted_all(tiles: list[Tile], box: tuple[int, int]) -> Iterator[Image.Image | str | None]:
    """Each tile's image shrunk into `box`, in order: None for a placeholder, or why the
    file could not be read.

    Two images are decoded at a time (Pillow lets go of the GIL while it decodes), so at
    most two full-size images are ever in memory, and each is dropped once shrunk.
    """
    from concurrent.futures import ThreadPoolExecutor

    pending: list[Future[Image.Image | str] | None] = []
    workers = max(1, min(2, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for tile in tiles:
            pending.append(pool.submit(fitted, tile.path, box) if tile.path else None)
            # A bounded window ahead of the one being pasted: shrunk tiles do not pile up.
            if len(pending) > workers * 2:
                yield _result(pending.pop(0))
        while pending:
            yield _result(pending.pop(0))


def _result(future: Future[Image.Image | str] | None) -> Image.Image | str | None:
    return None if future is None else future.result()


def fitted(path: Path | BinaryIO, box: tuple[int, int]) -> Image.Image | str:
    """One image (a file, or its bytes in a file object), decoded at about `box` and
    shrunk into it (never enlarged); RGB."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            orientation = _orientation(image)
            target = (box[1], box[0]) if orientation in _QUARTER_TURNS else box
            # JPEG decodes straight at 1/2, 1/4 or 1/8 scale: most of the work skipped.
            image.draft("RGB", target)
            # A smaller image is left as it is. A reducing gap of 1 shrinks by whole
            # factors (box averaging) before the fine resize: 3 times as fast as
            # Pillow's default for 1152 px images, and a contact sheet cannot tell.
            image.thumbnail(target, reducing_gap=1.0)
            image.load()  # thumbnail leaves an image that fits unread; the file closes next
            return _upright_rgb(image, orientation)
    except (OSError, ValueError, EOFError, SyntaxError, Image.DecompressionBombError) as exc:
        return one_line(exc, 200) or type(exc).__name__


def _upright_rgb(image: Image.Image, orientation: int) -> Image.Image:
    """The image turned as its EXIF orientation says, flattened onto the background."""
    from PIL import Image, ImageOps

    if orientation != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: Pillow's conversion clips it to white; scale it to 8 bits instead.
        image = image.point(lambda value: value / 256, "L") if image.mode != "I" else image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")
