"""`soul show`: a task's images (or image files) in the terminal, as a labelled grid."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from soulcli.commands import new_app
from soulcli.errors import ExitCode, SoulError, UsageError
from soulcli.terminal_images import PROTOCOLS

if TYPE_CHECKING:
    from soulcli.follow import Outcome
    from soulcli.ledger import Ledger, TaskRecord
    from soulcli.terminal_images import Picture

ProtocolOption = Annotated[
    str,
    typer.Option(
        "--protocol",
        metavar="|".join(PROTOCOLS),
        help="How to draw: auto asks the terminal (Kitty graphics, Sixel, else coloured "
        "half blocks, which work in any colour terminal).",
    ),
]


def show(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[TASK|PATH|#N]...",
            help="Tasks (task ids, or #N / N from `soul history`) and image files; "
            "default: the newest task.",
            show_default=False,
        ),
    ] = None,
    protocol: ProtocolOption = "auto",
) -> None:
    """Show images in the terminal: a task's 4 as a 2x2 grid, labelled.

    Piped, it prints the image paths, one per line, and no escape codes.

    \b
    Examples:
      soul show                  # the newest task
      soul show 12 13            # tasks 12 and 13 of `soul history`
      soul show pics/dog_1.png --protocol halfblock
    """
    if protocol not in PROTOCOLS:
        raise UsageError(
            f"unknown --protocol {protocol!r}", hint="use one of " + ", ".join(PROTOCOLS)
        )
    groups = picture_groups(targets or [])
    if len(groups) == 1 or not sys.stdout.isatty():
        show_pictures([p for _, group in groups for p in group], protocol=protocol)
        return
    from soulcli import ui

    for title, group in groups:  # each task its own grid, under its name
        if title:
            ui.emit(title)
        show_pictures(group, protocol=protocol)


def show_pictures(
    pictures: list[Picture],
    *,
    protocol: str = "auto",
    only_on_terminal: bool = False,
    fit_height: bool = True,
    max_tile: int | None = None,
) -> None:
    """Draw on a terminal; piped, print the paths of the images there are (unless
    `only_on_terminal`: after generate or fetch, which printed them already)."""
    import sys

    from soulcli import ui

    if not sys.stdout.isatty():
        if not only_on_terminal:
            for picture in pictures:
                if picture.path is not None:
                    ui.emit(str(picture.path))
        return
    from soulcli.terminal_images import start_loading

    loading = start_loading(pictures)  # decoding overlaps the imports below
    from rich.console import Console

    from soulcli.terminal_images import render

    render(
        pictures,
        Console(highlight=False),
        protocol=protocol,
        fit_height=fit_height,
        max_tile=max_tile,
        loading=loading,
    )


def outcome_pictures(outcome: Outcome, request: dict[str, Any]) -> list[Picture]:
    """The tiles of a task just saved, labelled with the request's style and seed."""
    from soulcli.terminal_images import Picture

    style = request.get("style")
    name = style.get("name") if isinstance(style, dict) else None
    seed = request.get("seed")
    saved = {image.index: image.path for image in outcome.saved}
    missing = {image.index: image.status for image in outcome.missing}
    pictures = []
    for index in sorted(saved.keys() | missing.keys()):
        label = f"#{index}" + (f" {name}" if name else "") + (f" · seed {seed}" if seed else "")
        pictures.append(Picture(saved.get(index), label, missing.get(index, "")))
    return pictures


def picture_groups(targets: list[str]) -> list[tuple[str, list[Picture]]]:
    """The tiles to draw, in order, grouped: each task's images together, and the
    image files given in a row together. The titles name the tasks."""
    from soulcli.ledger import Ledger
    from soulcli.text import shorten

    files = [_existing_file(target) for target in targets]
    if targets and all(files):  # no ledger needed
        return [("", [file_picture(path) for path in files if path])]
    groups: list[tuple[str, list[Picture]]] = []
    with Ledger.open() as ledger:
        if not targets:
            record = ledger.newest()
            if record is None:
                raise SoulError(
                    "no task in the ledger yet",
                    hint="see `soul history`",
                    exit_code=ExitCode.NOT_FOUND,
                )
            return [("", task_pictures(record))]
        after_a_file = False
        for target, path in zip(targets, files, strict=True):
            if path is not None:
                if after_a_file:  # files given in a row share a grid
                    groups[-1][1].append(file_picture(path))
                else:
                    groups.append(("", [file_picture(path)]))
                after_a_file = True
                continue
            after_a_file = False
            record = _record_for(ledger, target)
            title = f"task {record.id}: {shorten(record.prompt, 60)!r}"
            groups.append((title, task_pictures(record)))
    return groups


def _existing_file(target: str) -> Path | None:
    """The file a target names, if it is one (`~nobody/x`, a too long name: not a file)."""
    try:
        path = Path(target).expanduser()
        return path if path.is_file() else None
    except (OSError, RuntimeError, ValueError):
        return None


def _record_for(ledger: Ledger, target: str) -> TaskRecord:
    """The ledger task a target names; exit 7 for a task id that is not there."""
    key = target.strip().removeprefix("#")
    record = ledger.get(key) if key else None
    if record is not None:
        return record
    from soulcli.models import valid_task_id

    if key.isdigit() or valid_task_id(key):
        raise SoulError(
            f"no task {target} in `soul history`",
            hint="see `soul history`",
            exit_code=ExitCode.NOT_FOUND,
        )
    raise UsageError(
        f"{target!r} is neither an image file nor a task in `soul history`",
        hint="give a task id, #N from `soul history`, or a path",
    )


def task_pictures(record: TaskRecord) -> list[Picture]:
    """A task's tiles by image index: saved files, else placeholders saying why."""
    from soulcli.terminal_images import Picture

    pictures = []
    for image in sorted(record.images, key=lambda i: int(i.get("index", 0))):
        label = f"#{image.get('index')} {record.style_name} · seed {record.seed}"
        path = Path(str(image["path"])) if image.get("path") else None
        if path is not None and path.is_file():
            pictures.append(Picture(path, label))
        else:
            status = "not on disk" if path is not None else str(image.get("status") or "missing")
            pictures.append(Picture(None, label, status))
    if not pictures:  # nothing came back yet, or ever: one grey tile saying so
        label = f"task {record.id} {record.style_name} · seed {record.seed}"
        pictures.append(Picture(None, label, record.state))
    return pictures


def file_picture(path: Path) -> Picture:
    """An image file's tile, labelled from its sidecar when soul saved it."""
    from soulcli.sidecar import read_sidecar
    from soulcli.terminal_images import Picture

    try:
        meta = read_sidecar(path)
    except UsageError:
        return Picture(path, path.name)
    style = meta.get("style")
    name = style.get("name") if isinstance(style, dict) else None
    return Picture(path, f"#{meta.get('index', '?')} {name or path.name} · seed {meta.get('seed')}")


app = new_app()
app.command()(show)
