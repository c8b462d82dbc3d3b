"""`soul sheet`: one PNG contact sheet of tasks from the ledger or of image files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from soulcli.commands import new_app
from soulcli.errors import UsageError

if TYPE_CHECKING:
    from PIL import Image

    from soulcli.ledger import Ledger, TaskRecord
    from soulcli.sheet import Tile

DEFAULT_NAME = "soul-sheet.png"


@dataclass
class Source:
    """What one argument named: a ledger task, or an image file."""

    tiles: list[Tile]
    prompt: str | None
    record: TaskRecord | None = None


def sheet(
    items: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[TASK|PATH]...",
            help="Task ids, local ids from `soul history` (12 or #12) and image files, in "
            "any mix; their tiles follow in this order. Default: the newest task.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE.png",
            help="Write the sheet here, replacing what is there (a directory: into it). "
            f"Default: STEM_sheet.png beside one task's images, else ./{DEFAULT_NAME}.",
            show_default=False,
        ),
    ] = None,
    columns: Annotated[
        int | None,
        typer.Option(
            "--columns",
            metavar="N",
            help="Tiles per row, 1 to 10 (default: 2 for up to 4 tiles, else about the "
            "square root).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Make one PNG contact sheet of tasks or images, and print its path.

    A task's 4 images are tiles in order, each labelled with its style, seed and
    index; an image that was not delivered or is no longer on disk is a grey tile
    saying why. The prompt is the title (shared by all, or the number of tasks).

    \b
    Examples:
      soul sheet                          # the newest task, beside its images
      soul sheet 12 13 14 -o dogs.png     # three tasks of `soul history`
      soul sheet pics/*.png -o pics.png
    """
    from soulcli import ui
    from soulcli.sheet import MAX_COLUMNS, make_sheet, record_stem

    if columns is not None and not 1 <= columns <= MAX_COLUMNS:
        raise UsageError(f"--columns {columns} is not a number of columns; give 1 to 10")
    sources = resolve(items or [])
    tiles = [tile for source in sources for tile in source.tiles]
    for source in sources:
        if source.record is not None:
            _warn_about(source.record, source.tiles)
    records = [s.record for s in sources if s.record is not None]
    if len(sources) == 1 and records:
        record = records[0]
        default = _images_dir(record, tiles) / f"{record_stem(record)}_sheet.png"
    else:
        default = Path.cwd() / DEFAULT_NAME
    target = _target(out, default, tiles)
    image = make_sheet(tiles, title=_title(sources), columns=columns, warn=ui.warn)
    _write(image, target)
    ui.emit(str(target))


def resolve(items: list[str]) -> list[Source]:
    """Each argument as a task or an image file; no argument: the newest task."""
    from soulcli.ledger import Ledger
    from soulcli.sheet import prompt_for_path, tile_for_path

    files = {item: Path(item).expanduser() for item in items if _is_file(item)}
    if len(files) == len(items) and items:
        # Only image files: the ledger is not opened (it may be elsewhere, or unusable).
        return [Source([tile_for_path(p)], prompt_for_path(p)) for p in files.values()]
    sources = []
    with Ledger.open() as ledger:
        if not items:
            newest = ledger.newest()
            if newest is None:
                raise UsageError("no tasks in the ledger yet", hint="name tasks or image files")
            return [_task_source(newest)]
        for item in items:
            record = _find_task(ledger, item)
            if record is not None:
                sources.append(_task_source(record))
            elif item in files:
                sources.append(Source([tile_for_path(files[item])], prompt_for_path(files[item])))
            else:
                raise UsageError(
                    f"{item!r} is neither a task in the ledger nor an image file",
                    hint="see `soul history`; a task soul did not submit: `soul fetch ID -o DIR`",
                )
    return sources


def _is_file(item: str) -> bool:
    try:
        return Path(item).expanduser().is_file()
    except (OSError, ValueError):  # a name too long, or with a NUL, is no file
        return False


def _find_task(ledger: Ledger, item: str) -> TaskRecord | None:
    """A task by local id (12, #12) or task id; a bare number that is a file is the file."""
    text = item.strip()
    if text.startswith("#") and text[1:].isdigit():
        return ledger.get(text[1:])
    if text.isdigit() and _is_file(item):
        return None
    if not text or "/" in text or "." in text:
        return None  # a path, never a task id
    return ledger.get(text)


def _task_source(record: TaskRecord) -> Source:
    from soulcli.sheet import tiles_for_record

    return Source(tiles_for_record(record), record.prompt, record)


def _warn_about(record: TaskRecord, tiles: list[Tile]) -> None:
    """Say why tiles of a task are grey where it is not the task's own outcome."""
    from soulcli import ui
    from soulcli.ledger import UNFINISHED
    from soulcli.sheet import NOT_ON_DISK

    name = record.remote_id or f"#{record.id}"
    gone = sum(1 for tile in tiles if tile.status == NOT_ON_DISK)
    if gone:
        ui.warn(
            f"task {name}: {gone} of its images {'is' if gone == 1 else 'are'} not on disk "
            "(moved or deleted?); they are grey tiles"
        )
    if record.state in UNFINISHED and record.remote_id:
        ui.warn(f"task {name} is still {record.state}; `soul fetch {record.id} --wait` saves it")


def _images_dir(record: TaskRecord, tiles: list[Tile]) -> Path:
    """Where one task's sheet goes: beside its images, else its recorded directory."""
    for tile in tiles:
        if tile.path is not None:
            return tile.path.parent
    recorded = Path(record.out_dir).expanduser() if record.out_dir else None
    return recorded if recorded is not None and recorded.is_dir() else Path.cwd()


def _target(out: Path | None, default: Path, tiles: list[Tile]) -> Path:
    """The sheet's path: --out (into it if a directory) or the default; never an image."""
    target = default if out is None else Path(out).expanduser()
    if out is not None and target.is_dir():
        target = target / default.name
    if target.suffix.lower() != ".png":
        raise UsageError(f"a sheet is a PNG: give -o {target.stem}.png, not {target.name}")
    target = target.resolve()
    sources = {tile.path.resolve() for tile in tiles if tile.path is not None}
    if target in sources:
        raise UsageError(f"refusing to write the sheet over one of its images, {target}")
    if target.is_file() and _saved_by_soul(target):
        # A paid image, with its sidecar: never written over by a sheet.
        raise UsageError(f"refusing to write the sheet over {target}, an image soul saved")
    return target


def _saved_by_soul(path: Path) -> bool:
    """Whether `path` is an image soul saved (its .json sidecar names a task)."""
    from soulcli.sidecar import sidecar_path

    sidecar = sidecar_path(path)
    try:
        return sidecar.is_file() and '"task_id"' in sidecar.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def _title(sources: list[Source]) -> str:
    """The prompt they all share, else how many tasks and images there are."""
    prompts = {source.prompt for source in sources}
    if len(prompts) == 1 and None not in prompts:
        return str(prompts.pop())
    tasks = sum(1 for s in sources if s.record is not None)
    images = len(sources) - tasks
    parts = [f"{tasks} task{'s' if tasks != 1 else ''}"] if tasks else []
    if images:
        parts.append(f"{images} image{'s' if images != 1 else ''}")
    return ", ".join(parts)


def _write(image: Image.Image, target: Path) -> None:
    from soulcli.sheet import write_sheet

    try:
        write_sheet(image, target)
    except OSError as exc:
        raise UsageError(
            f"cannot write the sheet to {target}: {exc.strerror or exc}",
            hint="give -o FILE.png in a directory you can write to",
        ) from None


app = new_app()
app.command()(sheet)
