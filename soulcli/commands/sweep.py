"""`soul sweep`: one prompt across many styles with one seed, ending in a contact sheet."""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from soulcli.batchrun import DEFAULT_CONCURRENCY
from soulcli.commands import new_app
from soulcli.errors import UsageError
from soulcli.options import (
    ConcurrencyOption,
    JsonFlag,
    NegativeOption,
    OutDir,
    QualityOption,
    RatioOption,
    SeedOption,
    TimeoutOption,
)

if TYPE_CHECKING:
    from soulcli.batchrun import LineResult
    from soulcli.catalog import Style
    from soulcli.sheet import Tile

# Without confirm_above, a sweep asks before spending more than this (ten 720p styles).
SWEEP_CONFIRM_ABOVE = Decimal("1")


def sweep(
    prompt: Annotated[str, typer.Argument(help="What to draw in every style.", show_default=False)],
    styles: Annotated[
        str | None,
        typer.Option("--styles", metavar="A,B,C", help="Comma-separated style names or ids."),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option("--search", "-S", metavar="WORD", help="Every style whose name has WORD."),
    ] = None,
    all_styles: Annotated[
        bool, typer.Option("--all", help="All 60 styles (6 PTC at 720p).")
    ] = False,
    seed: SeedOption = None,
    ar: RatioOption = None,
    quality: QualityOption = None,
    negative: NegativeOption = None,
    out: OutDir = None,
    concurrency: ConcurrencyOption = DEFAULT_CONCURRENCY,
    max_cost: Annotated[
        str | None,
        typer.Option("--max-cost", metavar="PTC", help="Refuse the sweep if it costs more."),
    ] = None,
    all_images: Annotated[
        bool,
        typer.Option("--all-images", help="Put all 4 images of each style on the sheet."),
    ] = False,
    json_: JsonFlag = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Do not ask before spending more than 1 PTC (or confirm_above).",
        ),
    ] = False,
    timeout: TimeoutOption = None,
    show: Annotated[
        bool,
        typer.Option("--show/--no-show", help="Show the contact sheet in the terminal."),
    ] = True,
) -> None:
    """Try one prompt in many styles, all with the same seed, and compare them on a sheet.

    One request per style, with the same seed (given, or picked from the prompt and
    options, so that running the same sweep again resumes it and pays for nothing
    twice), ratio, quality and negative prompt. The price is said before anything is
    sent, and above 1 PTC (or confirm_above) it asks first. It ends with a labelled
    contact sheet beside the images, whose path is the last line on stdout, shown in
    the terminal too (--no-show to skip).

    \b
    Examples:
      soul sweep "a dog in the rain" --styles Tokyo,Y2K,Fisheye
      soul sweep "a dog" --search cam --seed 7 -o sweeps
      soul sweep "a dog" --all --yes
    """
    from soulcli import ui
    from soulcli.batchfile import BatchDefaults
    from soulcli.commands.batch import exit_for, run_batch
    from soulcli.config import effective_settings
    from soulcli.models import format_ptc
    from soulcli.request_builder import build_request, check_prompt

    chosen = chosen_styles(styles, search, all_styles)
    settings = effective_settings()
    # Every request differs only by its style: one, checked before the price is said,
    # gives the ratio, quality and price of all.
    first = build_request(
        check_prompt(prompt),
        style=chosen[0].id,
        ar=ar if ar is not None else settings.aspect_ratio,
        quality=quality or settings.quality,
        seed=seed,
        negative=negative,
        enhance=None,
    )
    if seed is None:
        seed = picked_seed(prompt, chosen, first.aspect_ratio, first.quality, negative)
    out_dir = str(out if out is not None else settings.out_dir or ".")
    text = "\n".join(
        json.dumps({"prompt": prompt, "style": style.id, "name": stem(style, seed)})
        for style in chosen
    )
    defaults = BatchDefaults(
        ar=first.aspect_ratio, quality=first.quality, seed=seed, negative=negative, out=out_dir
    )
    total = first.price * len(chosen)
    ui.say(
        f"soul: sweep of {prompt!r} across {len(chosen)} style{'s' if len(chosen) != 1 else ''}"
        f" · seed {seed} · {len(chosen)} request{'s' if len(chosen) != 1 else ''}"
        f" · {format_ptc(total)} PTC"
    )
    results = run_batch(
        text,
        "sweep",
        defaults,
        settings=settings,
        as_json=json_,
        concurrency=concurrency,
        max_cost=max_cost,
        resume=False,
        again=False,
        yes=yes,
        timeout=timeout,
        dry_run=False,
        confirm_above=settings.confirm_above
        if settings.confirm_above is not None
        else SWEEP_CONFIRM_ABOVE,
        limit_name="confirm_above" if settings.confirm_above is not None else "1 PTC",
    )
    try:
        sheet = write_sweep_sheet(results, prompt, seed, Path(out_dir), all_images=all_images)
    except OSError as exc:  # the tasks are paid and saved: say so, and exit as a batch
        ui.warn(f"could not write the contact sheet: {exc.strerror or exc}")
        exit_for(results)
        return
    if json_:  # JSON Lines stay JSON Lines: the sheet is one more object
        ui.emit_json({"sheet": str(sheet), "seed": seed, "styles": len(chosen)})
    else:
        ui.emit(str(sheet))
    if show:  # on a terminal the tiles are shown too, their names as text
        from soulcli.commands.show import show_pictures
        from soulcli.terminal_images import Picture

        tiles = sweep_tiles(results, all_images=all_images)
        pictures = [Picture(tile.path, tile.label, tile.status) for tile in tiles]
        show_pictures(pictures, only_on_terminal=True, fit_height=False, max_tile=24)
    exit_for(results)


def chosen_styles(styles: str | None, search: str | None, all_styles: bool) -> list[Style]:
    """The styles of a sweep, from exactly one of --styles, --search and --all."""
    from soulcli.catalog import load_styles, resolve_style, search_styles

    given = [styles is not None, search is not None, all_styles]
    if sum(given) != 1:
        raise UsageError(
            "choose the styles with one of --styles A,B,C, --search WORD or --all",
            hint='e.g. soul sweep "a dog" --styles Tokyo,Y2K',
        )
    if all_styles:
        return list(load_styles())
    if search is not None:
        found = search_styles(search)
        if not found:
            raise UsageError(f"no style name contains {search!r}", hint="see `soul styles`")
        return found
    assert styles is not None
    names = [name.strip() for name in styles.split(",") if name.strip()]
    if not names:
        raise UsageError("--styles is empty", hint="e.g. --styles Tokyo,Y2K")
    chosen: list[Style] = []
    for name in names:
        style = resolve_style(name)
        if style not in chosen:
            chosen.append(style)
    return chosen


def picked_seed(
    prompt: str, styles: list[Style], ratio: str | None, quality: str, negative: str | None
) -> int:
    """A seed picked from what the sweep asks for: the same sweep gets the same seed,
    so running it again resumes it instead of paying for every style again."""
    from soulcli.constants import SEED_MAX, SEED_MIN

    material = json.dumps([prompt, [s.id for s in styles], ratio, quality, negative])
    number = int.from_bytes(hashlib.sha256(material.encode()).digest()[:8], "big")
    return SEED_MIN + number % (SEED_MAX - SEED_MIN + 1)


def stem(style: Style, seed: int) -> str:
    """The images' file stem: `tokyo-streetstyle-7_1.png` (a plain file name)."""
    slug = re.sub(r"[^a-z0-9]+", "-", style.name.lower()).strip("-") or "style"
    return f"{slug}-{seed}"


def write_sweep_sheet(
    results: list[LineResult], prompt: str, seed: int, out_dir: Path, *, all_images: bool
) -> Path:
    """One tile per style (or four), in the sweep's order, saved beside the images."""
    from soulcli.sheet import make_sheet, write_sheet

    tiles = sweep_tiles(results, all_images=all_images)
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40] or "sweep"
    # Two sweeps may share a slug and a seed: the prompt and the styles keep them apart.
    ordered = sorted(results, key=lambda r: r.line.number)
    styles = ",".join(r.line.request.style_id for r in ordered)
    tag = hashlib.sha256(f"{prompt}\n{styles}".encode()).hexdigest()[:6]
    sheet = make_sheet(tiles, title=f"{prompt} · seed {seed}", columns=4 if all_images else None)
    return write_sheet(sheet, out_dir.expanduser().resolve() / f"sweep-{slug}-{seed}-{tag}.png")


def sweep_tiles(results: list[LineResult], *, all_images: bool) -> list[Tile]:
    """The sheet's tiles: each style's first image (or all four), in the sweep's order;
    a style with fewer images keeps its row with one grey tile per image it lacks."""
    from soulcli.sheet import Tile

    tiles: list[Tile] = []
    per_style = 4 if all_images else 1
    for result in sorted(results, key=lambda r: r.line.number):
        name = result.line.request.style_name
        images = _images_of(result)[:per_style]
        for index, path in images:
            label = f"{name} #{index}" if all_images else name
            if path is not None and not path.is_file():
                tiles.append(Tile(None, label, "not on disk"))
            else:
                tiles.append(Tile(path, label) if path else Tile(None, label, "missing"))
        for number in range(len(images), per_style):
            label = f"{name} #{number + 1}" if all_images else name
            tiles.append(Tile(None, label, result.state))
    return tiles


def _images_of(result: LineResult) -> list[tuple[int, Path | None]]:
    """(index, path) of a line's images, whether this run saved them or an earlier one."""
    if result.outcome is not None:
        saved: dict[int, Path | None] = {i.index: i.path for i in result.outcome.saved}
        saved.update({m.index: None for m in result.outcome.missing})
        return sorted(saved.items())
    if result.earlier is not None:
        return sorted(
            (int(i["index"]), Path(i["path"]) if i.get("path") else None)
            for i in result.earlier.images
        )
    return []


app = new_app()
app.command()(sweep)
