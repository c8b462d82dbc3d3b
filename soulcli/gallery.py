"""The gallery: the ledger's tasks as cards on one static page that works offline."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from soulcli.errors import UsageError
from soulcli.sheet import NOT_ON_DISK
from soulcli.thumbnails import Thumb

if TYPE_CHECKING:
    from soulcli.ledger import TaskRecord

PAGE = "index.html"
ASSETS = "assets"
THUMBS = "thumbs"
ASSET_FILES = ("gallery.css", "gallery.js")
OWN_ENTRIES = frozenset({PAGE, ASSETS, THUMBS})
# The page says it was made by soul: a folder holding such a page is a gallery that
# may be rewritten; any other folder that is not empty is refused.
GENERATOR = "soul gallery"


@dataclass
class Picture:
    """One image of a card: a saved file and its thumbnail, or why there is none."""

    caption: str
    label: bool  # whether the caption is shown under the picture (a sweep's style names)
    path: Path | None = None
    thumb: Thumb | None = None
    status: str = ""


@dataclass
class Card:
    """One task, or one sweep's tasks (a style each), as the page shows them."""

    records: list[TaskRecord]  # every task the card stands for (and costs)
    sweep: bool = False
    pictures: list[Picture] = field(default_factory=list)
    images: int = 0  # saved images on disk, a sweep's included (not only the shown ones)
    missing: int = 0
    # The tasks shown: all, except that a sweep line tried twice shows its newest.
    shown: list[TaskRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shown = self.shown or list(self.records)

    @property
    def first(self) -> TaskRecord:
        return self.shown[0]

    @property
    def created_at(self) -> float:
        return max(r.created_at for r in self.records)

    @property
    def price(self) -> Decimal:
        return sum((r.price_ptc for r in self.records), Decimal(0))

    @property
    def styles(self) -> list[str]:
        return list(dict.fromkeys(r.style_name for r in self.shown))

    def command(self) -> str:
        """The command that makes this card's images again."""
        first = self.first
        if self.sweep:
            words = ["soul", "sweep", first.prompt, "--styles", ",".join(self.styles)]
            words += ["--seed", str(first.seed), "--ar", first.aspect_ratio]
            words += ["--quality", first.quality]
            if first.negative_prompt:
                words += ["--negative", first.negative_prompt]
            # The same folder makes it the same sweep: run again, it pays for nothing
            # already made (elsewhere it would be a new sweep, paid in full).
            if first.out_dir:
                words += ["-o", first.out_dir]
            return shlex.join(words)
        saved = next((p.path for p in self.pictures if p.path is not None), None)
        # The sidecar beside a saved image holds the request; without one, the ledger does.
        like = str(saved) if saved is not None else (first.remote_id or str(first.id))
        return shlex.join(["soul", "generate", "--like", like])


@dataclass
class GalleryReport:
    """What a build wrote and counted."""

    page: Path
    tasks: int
    images: int
    missing: int
    spent: Decimal
    thumbs_made: int


def cards_for(records: list[TaskRecord], sweep_batches: set[int]) -> list[Card]:
    """One card per task, newest first; a sweep's tasks share one card, in style order."""
    cards: list[Card] = []
    sweeps: dict[int, list[TaskRecord]] = {}
    for record in records:
        if record.batch_id is not None and record.batch_id in sweep_batches:
            sweeps.setdefault(record.batch_id, []).append(record)
        else:
            cards.append(Card([record]))
    for tasks in sweeps.values():
        # A sweep line tried again (after a failure) shows its newest task.
        by_line: dict[int, TaskRecord] = {}
        for record in sorted(tasks, key=lambda r: (r.created_at, r.id)):
            by_line[record.batch_line or 0] = record
        shown = [by_line[line] for line in sorted(by_line)]
        if _one_sweep(shown):
            cards.append(Card(tasks, sweep=True, shown=shown))
        else:  # a batch file that happens to be named `sweep`
            cards += [Card([record]) for record in tasks]
    cards.sort(key=lambda c: (c.created_at, c.first.id), reverse=True)
    return cards


def _one_sweep(records: list[TaskRecord]) -> bool:
    """Whether these tasks are one request in several styles, as `soul sweep` sends."""
    first = records[0]
    same = all(
        (r.prompt, r.negative_prompt, r.seed, r.aspect_ratio, r.quality)
        == (first.prompt, first.negative_prompt, first.seed, first.aspect_ratio, first.quality)
        for r in records
    )
    return same and len({r.style_id for r in records}) == len(records)


# More than the API's 4 images is a hand-edited ledger: no page of a thousand boxes.
MOST_PICTURES = 16


def pictures_for(card: Card) -> list[Picture]:
    """A task's 4 (or more) pictures; a sweep's first picture of each style.

    Also counts the card's saved and missing images, a sweep's hidden ones included.
    """
    from soulcli.sheet import tiles_for_record

    pictures = []
    card.images = card.missing = 0
    for record in card.shown:
        tiles = tiles_for_record(record, base=Path(record.out_dir or "."))[:MOST_PICTURES]
        for tile in tiles:
            if tile.path is None:
                card.missing += 1
            else:
                card.images += 1
        if card.sweep:
            # The style's first saved image, else its first tile to say why there is none.
            tiles = [next((t for t in tiles if t.path is not None), tiles[0])]
            captions = [record.style_name]
        else:
            captions = [f"#{index}" for index in range(1, len(tiles) + 1)]
        for tile, caption in zip(tiles, captions, strict=True):
            pictures.append(Picture(caption, card.sweep, tile.path, status=tile.status))
    return pictures


def check_folder(folder: Path) -> Path:
    """The gallery folder, made if missing; refuses a folder that holds anything else."""
    folder = folder.expanduser()
    try:
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder} is a file, not a folder for the gallery")
        refuse_a_stranger(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return folder.resolve()
    except OSError as exc:
        raise UsageError(f"cannot create the gallery folder {folder}: {exc.strerror}") from exc


# What file managers leave in any folder they show: never a reason to refuse one.
LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", ".directory", ".localized"})


def refuse_a_stranger(folder: Path) -> None:
    """Refuse a folder holding anything a gallery does not (your pictures, say).

    A gallery holds the page, `assets/` with its two files and `thumbs/` with
    thumbnails and their manifest (and, after a killed build, temp files); a page
    there must be one soul wrote.
    """
    from soulcli.thumbnails import MANIFEST, THUMB_NAME

    expected = {
        folder: OWN_ENTRIES,
        folder / ASSETS: frozenset(ASSET_FILES),
        folder / THUMBS: frozenset({MANIFEST}),
    }
    for where, own in expected.items():
        try:
            entries = os.listdir(where)
        except (FileNotFoundError, NotADirectoryError):
            continue
        strangers = [
            e
            for e in entries
            if e not in own
            and e not in LITTER
            and not (e.startswith(".") and e.endswith(".part"))
            and not (where.name == THUMBS and THUMB_NAME.fullmatch(e))
        ]
        if strangers or (where == folder and PAGE in entries and not _written_by_soul(where)):
            raise UsageError(
                f"{folder} is not empty and holds no soul gallery; nothing was written",
                hint="give -o an empty or new folder, or one soul gallery wrote before",
            )


def _written_by_soul(folder: Path) -> bool:
    try:
        with open(folder / PAGE, encoding="utf-8", errors="replace") as handle:
            head = handle.read(2048)
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}">' in head


def build(
    folder: Path,
    records: list[TaskRecord],
    sweep_batches: set[int],
    *,
    filters: str = "",
    complete: bool = True,
    waiting: Callable[[], None] | None = None,
) -> GalleryReport:
    """Write the page, its assets and any new thumbnails into `folder`.

    `complete` says the records are the whole ledger: thumbnails of images no longer
    in it are deleted. A filtered build keeps them for the next whole one. `waiting`
    is called if another build holds the folder (this one then waits for it).
    """
    folder = check_folder(folder)
    try:
        with _only_builder(folder, waiting):
            # Again, now that no other build is writing here.
            refuse_a_stranger(folder)
            return _build(folder, records, sweep_batches, filters=filters, complete=complete)
    except OSError as exc:
        raise UsageError(f"cannot write the gallery in {folder}: {exc.strerror or exc}") from exc


@contextmanager
def _only_builder(folder: Path, waiting: Callable[[], None] | None) -> Iterator[None]:
    """Hold the folder while building: a second build waits rather than pruning
    thumbnails the first one's page uses."""
    try:
        import fcntl
    except ImportError:  # not POSIX: builds are not kept apart
        yield
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # and with it the lock


def _build(
    folder: Path,
    records: list[TaskRecord],
    sweep_batches: set[int],
    *,
    filters: str,
    complete: bool,
) -> GalleryReport:
    from soulcli.atomicfile import write_atomically
    from soulcli.gallery_page import render_page
    from soulcli.thumbnails import ThumbnailCache

    _remove_leftovers(folder)
    cards = cards_for(records, sweep_batches)
    for card in cards:
        card.pictures = pictures_for(card)
    cache = ThumbnailCache(folder / THUMBS)
    wanted = [p.path for card in cards for p in card.pictures if p.path is not None]
    thumbs = cache.thumbs_for(wanted)
    for card in cards:
        for picture in card.pictures:
            if picture.path is None:
                continue
            made = thumbs[picture.path]
            if isinstance(made, Thumb):
                picture.thumb = made
                continue
            picture.status = made
            if made == NOT_ON_DISK:  # moved or deleted a moment ago: nothing to link to
                picture.path = None
                card.images -= 1
                card.missing += 1
            # Otherwise (HEIC, say) it still counts, and still links to its file.
    _write_assets(folder / ASSETS)
    spent = sum((c.price for c in cards), Decimal(0))
    page = folder / PAGE
    html = render_page(cards, filters=filters, generator=GENERATOR)
    write_atomically(page, html.encode("utf-8"))
    # Only once the new page is in place: the old one used some of these.
    if complete:
        cache.keep_only({p.thumb.name for c in cards for p in c.pictures if p.thumb})
    cache.save()
    return GalleryReport(
        page=page,
        tasks=sum(len(c.records) for c in cards),
        images=sum(c.images for c in cards),
        missing=sum(c.missing for c in cards),
        spent=spent,
        thumbs_made=cache.made,
    )


def _write_assets(folder: Path) -> None:
    """Copy the page's stylesheet and script from the package, when they changed."""
    from importlib import resources

    from soulcli.atomicfile import write_atomically

    folder.mkdir(exist_ok=True)
    for name in ASSET_FILES:
        data = resources.files("soulcli").joinpath("data", name).read_bytes()
        target = folder / name
        try:
            if target.read_bytes() == data:
                continue
        except OSError:
            pass
        write_atomically(target, data)


def _remove_leftovers(folder: Path) -> None:
    """Delete temporary files a killed build left behind (their process has ended)."""
    from soulcli.process import pid_alive

    for where in (folder, folder / THUMBS, folder / ASSETS):
        try:
            entries = list(os.scandir(where))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(".part"):
                pid = entry.name[: -len(".part")].rpartition(".")[2]
                if pid.isdigit() and not pid_alive(int(pid)):
                    Path(entry.path).unlink(missing_ok=True)
