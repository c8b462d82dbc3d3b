"""`soul sheet`: contact sheets of ledger tasks and image files, through the installed soul."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageOps, ImageStat

from soulcli.fake302 import Fake302, FakeSettings
from soulcli.sheet import BACKGROUND, PLACEHOLDER, Grid, plan_grid, write_sheet
from tests.conftest import SENTINEL_KEY, run_soul

Colour = tuple[float, ...]


def generate(fake: Fake302, where: Path, prompt: str = "a dog in the rain") -> list[Path]:
    """One task's saved images (the ones delivered), generated into `where`."""
    result = run_soul(
        "generate", prompt, "--style", "Tokyo", "--seed", "42", "-o", str(where), fake=fake
    )
    assert result.code in (0, 12), result.stderr  # 12: some images not delivered
    return [Path(line) for line in result.lines]


def centre(image: Image.Image, box: tuple[int, int, int, int], radius: int = 4) -> Colour:
    """The mean colour of a small square at the centre of `box`."""
    x, y = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
    region = image.crop((x - radius, y - radius, x + radius + 1, y + radius + 1))
    return tuple(ImageStat.Stat(region).mean)


def close(a: Colour, b: Colour, tolerance: float = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def uniform(image: Image.Image, box: tuple[int, int, int, int]) -> bool:
    return image.crop(box).getcolors(1) is not None  # None: more than one colour


def source_centre(path: Path, grid: Grid) -> Colour:
    """The centre colour of a source image as fitted into a cell."""
    with Image.open(path) as source:
        fitted = ImageOps.contain(source.convert("RGB"), (grid.cell_width, grid.cell_height))
    return centre(fitted, (0, 0, fitted.width, fitted.height))


def assert_tiles_match(sheet: Image.Image, grid: Grid, sources: list[Path]) -> None:
    for index, path in enumerate(sources):
        shown = centre(sheet, grid.image_box(index))
        assert close(shown, source_centre(path, grid)), f"tile {index + 1} shows {shown}"


def test_sheet_of_the_newest_task_is_a_titled_labelled_2x2_grid_beside_its_images(
    fake: Fake302, tmp_path: Path
) -> None:
    pics = tmp_path / "pics"
    images = generate(fake, pics)
    task_id = images[0].name.rsplit("_", 1)[0]
    result = run_soul("sheet", fake=fake, cwd=tmp_path)  # no argument: the newest task
    assert result.code == 0, result.stderr
    # Piped, stdout is exactly the sheet's path; the default is beside the images.
    assert result.stdout == f"{pics.resolve() / f'{task_id}_sheet.png'}\n"
    assert result.stderr == ""
    with Image.open(result.stdout.strip()) as opened:
        assert opened.format == "PNG"
        grid = plan_grid(4, aspect=1.0, titled=True)
        assert (grid.columns, grid.rows) == (2, 2)
        assert opened.size == grid.size
        assert opened.width < 1200  # two cells of at most 512 px, not 1152 px images
        sheet = opened.convert("RGB")
        assert_tiles_match(sheet, grid, images)
        for index in range(4):
            assert not uniform(sheet, grid.label_box(index)), f"no label under tile {index + 1}"
        assert not uniform(sheet, (0, 0, sheet.width, grid.title_height))  # the prompt
    # Written atomically: no temp file is left beside it.
    assert sorted(p.name for p in pics.iterdir() if p.name.startswith(".")) == []


def test_an_image_not_delivered_or_not_on_disk_is_a_grey_tile_saying_so(
    tmp_path: Path,
) -> None:
    settings = FakeSettings(
        api_key=SENTINEL_KEY,
        queue_seconds=0.1,
        run_seconds=0.2,
        outcomes=["completed", "completed", "completed", "nsfw"],
    )
    with Fake302(settings) as fake:
        images = generate(fake, tmp_path / "pics")
        assert len(images) == 3
        images[1].unlink()  # the user moved image 2 away
        task_id = images[0].name.rsplit("_", 1)[0]
        result = run_soul("sheet", task_id, fake=fake)
    assert result.code == 0, result.stderr
    assert "1 of its images is not on disk" in result.stderr
    grid = plan_grid(4, aspect=1.0)
    with Image.open(result.stdout.strip()) as opened:
        sheet = opened.convert("RGB")
    for index in (1, 3):  # image 2 (gone) and image 4 (nsfw)
        left, top, right, bottom = grid.image_box(index)
        corner = (left + 2, top + 2, left + 30, top + 30)
        assert close(centre(sheet, corner, radius=8), PLACEHOLDER, tolerance=0)
        assert not uniform(sheet, (left, top, right, bottom))  # its status, written on it
    assert_tiles_match(sheet, grid, [images[0]])
    assert close(centre(sheet, grid.image_box(2)), source_centre(images[2], grid))


def sixty_images(where: Path) -> list[Path]:
    """60 small images of distinct solid colours (smaller than a cell)."""
    where.mkdir()
    paths = []
    for i in range(60):
        path = where / f"tile{i:02d}.png"
        Image.new("RGB", (96, 72), colour(i)).save(path)
        paths.append(path)
    return paths


def colour(i: int) -> tuple[int, int, int]:
    return (i * 4, 250 - i * 4, (i * 37) % 256)


def test_sixty_tiles_stay_under_4096_px_in_order_and_are_never_enlarged(tmp_path: Path) -> None:
    paths = sixty_images(tmp_path / "tiles")
    out = tmp_path / "sixty.png"
    result = run_soul("sheet", *map(str, paths), "-o", str(out))
    assert result.code == 0, result.stderr
    assert result.stdout == f"{out.resolve()}\n"
    with Image.open(out) as opened:
        sheet = opened.convert("RGB")
    grid = plan_grid(60, aspect=96 / 72, titled=True)
    assert sheet.size == grid.size
    assert sheet.width < 4096 and grid.columns == 8
    for i in range(60):
        left, top, right, bottom = grid.image_box(i)
        assert close(centre(sheet, (left, top, right, bottom)), colour(i), tolerance=1), i
        # 96x72 in a larger cell: centred at its own size, the background around it.
        middle_x, middle_y = (left + right) // 2, (top + bottom) // 2
        assert sheet.getpixel((middle_x - 47, middle_y)) == colour(i)
        assert sheet.getpixel((middle_x - 50, middle_y)) == BACKGROUND
        assert sheet.getpixel((middle_x, middle_y - 38)) == BACKGROUND


def test_several_tasks_follow_in_order_into_one_sheet_in_the_current_directory(
    fake: Fake302, tmp_path: Path
) -> None:
    first = generate(fake, tmp_path / "a")
    second = generate(fake, tmp_path / "b", prompt="a cat")
    first[0].unlink()  # the fake draws both tasks alike: this marks the first task's tiles
    result = run_soul("sheet", "2", "#1", fake=fake, cwd=tmp_path)  # local ids, `#N` too
    assert result.code == 0, result.stderr
    assert result.stdout == f"{(tmp_path / 'soul-sheet.png').resolve()}\n"
    grid = plan_grid(8, aspect=1.0)
    with Image.open(result.stdout.strip()) as opened:
        sheet = opened.convert("RGB")
    assert sheet.size == grid.size and grid.columns == 3
    left, top, _, _ = grid.image_box(4)  # the first task's image 1, after the second task
    assert sheet.getpixel((left + 4, top + 4)) == PLACEHOLDER
    for index, path in [*enumerate(second), *zip(range(5, 8), first[1:], strict=True)]:
        assert close(centre(sheet, grid.image_box(index)), source_centre(path, grid)), index


@pytest.mark.parametrize("where", ["missing/dir/out.png", "afile/out.png"])
def test_an_unwritable_out_is_one_line_and_exit_2_with_nothing_left(
    tmp_path: Path, where: str
) -> None:
    (tmp_path / "afile").write_text("not a directory")
    image = tmp_path / "one.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(image)
    before = sorted(tmp_path.rglob("*"))
    result = run_soul("sheet", str(image), "-o", str(tmp_path / where))
    assert result.code == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("soul: error: cannot write the sheet to ")
    assert sorted(tmp_path.rglob("*")) == before


def test_the_sheet_never_replaces_one_of_its_own_images(tmp_path: Path) -> None:
    image = tmp_path / "one.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(image)
    data = image.read_bytes()
    result = run_soul("sheet", str(image), "-o", str(image))
    assert result.code == 2 and "over one of its images" in result.stderr
    assert image.read_bytes() == data


def test_nothing_to_show_is_a_usage_error(tmp_path: Path) -> None:
    empty = run_soul("sheet", cwd=tmp_path)
    assert empty.code == 2 and "no tasks in the ledger yet" in empty.stderr
    unknown = run_soul("sheet", "nope.png", cwd=tmp_path)
    assert unknown.code == 2
    assert "'nope.png' is neither a task in the ledger nor an image file" in unknown.stderr
    assert list(tmp_path.glob("*.png")) == []


@pytest.fixture
def failing_save(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Image.save that writes a little and then fails, like a disk filling up."""

    def save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        assert hasattr(fp, "write")
        fp.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", save)
    yield


def test_a_failed_write_leaves_the_old_sheet_and_no_temp_file(
    tmp_path: Path, failing_save: None
) -> None:
    target = tmp_path / "sheet.png"
    target.write_bytes(b"the previous sheet")
    with pytest.raises(OSError, match="No space"):
        write_sheet(Image.new("RGB", (8, 8)), target)
    assert target.read_bytes() == b"the previous sheet"
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]


def test_a_file_that_is_no_image_is_a_grey_tile_and_a_warning(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    result = run_soul("sheet", str(text), "-o", str(tmp_path / "s.png"))
    assert result.code == 0
    assert result.stderr.startswith(f"soul: warning: cannot read {text}")
    left, top, _, _ = plan_grid(1).image_box(0)
    with Image.open(tmp_path / "s.png") as opened:
        assert opened.convert("RGB").getpixel((left + 4, top + 4)) == PLACEHOLDER


def test_jpeg_exif_turns_16_bit_grey_and_small_images_are_drawn_as_seen(tmp_path: Path) -> None:
    from soulcli.sheet import Tile, make_sheet

    turned = Image.new("RGB", (1200, 600), (10, 10, 240))
    exif = turned.getexif()
    exif[0x0112] = 6  # shot sideways: shown a quarter turn round, 600 wide and 1200 tall
    turned.save(tmp_path / "turned.jpg", exif=exif)
    Image.new("I;16", (300, 300), 40000).save(tmp_path / "grey16.png")
    Image.new("RGB", (40, 40), (250, 120, 0)).save(tmp_path / "small.png")  # read, not resized
    warnings: list[str] = []
    tiles = [Tile(tmp_path / name, name) for name in ("turned.jpg", "grey16.png", "small.png")]
    sheet = make_sheet(tiles, title=None, warn=warnings.append)
    assert warnings == []
    grid = plan_grid(3, aspect=600 / 1200, titled=False)
    assert sheet.size == grid.size and grid.title_height == 0
    left, top, right, bottom = grid.image_box(0)
    assert grid.cell_height > grid.cell_width  # the cell takes the first image's shape
    assert close(centre(sheet, grid.image_box(0)), (10, 10, 240))
    middle_y = (top + bottom) // 2
    assert sheet.getpixel((left + 2, middle_y)) == BACKGROUND  # letterboxed: 1:2 in 2:3
    assert sheet.getpixel(((left + right) // 2, top + 2)) != BACKGROUND
    assert close(centre(sheet, grid.image_box(1)), (156, 156, 156), tolerance=1)
    assert close(centre(sheet, grid.image_box(2)), (250, 120, 0), tolerance=1)


def test_a_sheet_is_never_written_over_an_image_soul_saved(fake: Fake302, tmp_path: Path) -> None:
    first = run_soul("generate", "a cat", "--name", "cat", "--out", str(tmp_path), fake=fake)
    second = run_soul("generate", "a dog", "--out", str(tmp_path), fake=fake)
    assert first.code == second.code == 0
    paid = Path(first.lines[0])
    before = paid.read_bytes()
    refused = run_soul("sheet", "2", "-o", str(paid), fake=fake)
    assert refused.code == 2 and "an image soul saved" in refused.stderr
    assert paid.read_bytes() == before
