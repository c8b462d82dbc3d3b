"""`soul show` and `--show`: the grid renderer per protocol, pipes, and the terminal."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from soulcli.fake302 import Fake302
from soulcli.terminal_images import Picture, render
from tests.conftest import run_soul

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def four(tmp_path: Path) -> list[Picture]:
    """Four 1152 px images of one colour each, labelled #1 to #4."""
    pictures = []
    for number, colour in enumerate(COLOURS, 1):
        path = tmp_path / f"img_{number}.png"
        Image.new("RGB", (1152, 1152), colour).save(path)
        pictures.append(Picture(path, f"#{number} Tokyo · seed 7"))
    return pictures


def drawn(pictures: list[Picture], protocol: str, width: int = 80) -> str:
    """What the renderer writes through Rich (Kitty's image data goes straight to the
    real stdout instead: see its test)."""
    console = Console(
        file=io.StringIO(), force_terminal=True, width=width, height=40, color_system="truecolor"
    )
    render(pictures, console, protocol=protocol)
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_half_blocks_fill_a_two_by_two_grid_in_order(four: list[Picture]) -> None:
    text = drawn(four, "halfblock", width=40)
    lines = text.splitlines()
    labels = [n for n, line in enumerate(lines) if "#" in ANSI.sub("", line)]
    assert len(labels) == 2  # two rows, each with its label line under it
    first_row = lines[: labels[0]]
    assert first_row and all(ANSI.sub("", line).count("▀") == 40 for line in first_row)
    # Left tile red, right tile green; second row blue then yellow.
    assert first_row[0].startswith("\x1b[38;2;255;0;0")
    assert "38;2;0;255;0" in first_row[0].rsplit("\x1b[0m", 3)[-3]
    second = lines[labels[0] + 1]
    assert second.startswith("\x1b[38;2;0;0;255")
    plain = [ANSI.sub("", lines[n]) for n in labels]
    assert plain[0].startswith("#1 Tokyo") and "#2 Tokyo" in plain[0]
    assert plain[1].startswith("#3 Tokyo") and "#4 Tokyo" in plain[1]
    assert all(len(line) <= 40 for line in plain)


def test_sixel_frames_each_row_as_one_image(four: list[Picture]) -> None:
    text = drawn(four, "sixel")
    frames = re.findall(r"\x1bP([0-9;]*)q(.*?)\x1b\\", text, flags=re.S)
    assert len(frames) == 2  # one image per row of the grid
    for _, body in frames:
        assert body.startswith('"') and "#" in body  # raster attributes, colour registers
    # The cursor is saved before and restored after each image.
    assert text.count("\x1b7") == 2 and text.count("\x1b8") == 2


def test_kitty_transmits_each_row_and_places_it_with_placeholders(
    four: list[Picture], capfd: pytest.CaptureFixture[str]
) -> None:
    text = drawn(four, "kitty")
    direct = capfd.readouterr().out
    transmissions = re.findall(r"\x1b_G([^;]*);", direct)
    assert transmissions and all("f=100" in keys for keys in transmissions)  # PNG data
    placements = re.findall(r"\x1b_Ga=p,([^\x1b]*)\x1b\\", direct)
    assert len(placements) == 2  # one image per row
    assert "\U0010eeee" in text  # the Unicode placeholders the image is drawn into
    assert "#1 Tokyo" in text and "#4 Tokyo" in text


def test_a_placeholder_tile_says_why(four: list[Picture]) -> None:
    four[3] = Picture(None, "#4 Tokyo · seed 7", "nsfw")
    text = drawn(four, "halfblock")
    assert "#4 Tokyo · seed 7 (nsfw)" in ANSI.sub("", text)


def test_show_piped_prints_the_paths_of_the_newest_task(fake: Fake302, tmp_path: Path) -> None:
    made = run_soul("generate", "a dog", "--name", "dog", "--out", str(tmp_path), fake=fake)
    assert made.code == 0
    shown = run_soul("show", fake=fake)
    assert shown.code == 0
    assert shown.lines == made.lines  # the same 4 paths, no escape codes (run_soul checks)
    by_path = run_soul("show", made.lines[1], "#1", fake=fake)
    assert by_path.lines == [made.lines[1], *made.lines]


def test_show_errors_are_one_line(fake: Fake302, tmp_path: Path) -> None:
    nothing = run_soul("show", fake=fake)
    assert nothing.code == 7 and "no task" in nothing.stderr
    unknown = run_soul("show", str(tmp_path / "nope.png"), fake=fake)
    assert unknown.code == 2 and len(unknown.stderr.splitlines()) == 1
    protocol = run_soul("show", "--protocol", "iterm", fake=fake)
    assert protocol.code == 2 and "--protocol" in protocol.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize("width", [40, 120])
def test_show_in_a_terminal_fits_the_width_and_the_height(
    fake: Fake302, tmp_path: Path, width: int
) -> None:
    from tests.test_screens import finished, rows_of
    from tests.test_terminal import Terminal, terminal_env

    made = run_soul("generate", "a dog", "--out", str(tmp_path), "--style", "Tokyo", fake=fake)
    assert made.code == 0
    terminal = Terminal(["bash", "--norc", "--noprofile"], width=width, env=terminal_env(fake))
    try:
        terminal.type("PS1='$ '; clear; soul show --protocol halfblock; echo EXIT=$?", enter=True)
        lines = rows_of(terminal.wait_for(finished, "soul show"))
    finally:
        terminal.close()
    assert "EXIT=0" in lines
    blocks = [line for line in lines if "▀" in line]
    labels = [line for line in lines if line.startswith("#")]
    assert len(labels) == 2 and labels[0].startswith("#1 Tokyo") and "#2" in labels[0]
    assert labels[1].startswith("#3") and "#4" in labels[1]
    assert blocks and all(len(line) <= width for line in lines)
    # The grid fits the 30-line pane: its image rows, 2 label lines, the prompt lines.
    assert len(blocks) + len(labels) <= 28


def test_styles_show_downloads_previews_once_and_works_offline_after(
    fake: Fake302, tmp_path: Path
) -> None:
    from tests.conftest import soul_env

    env = soul_env(fake, SOUL_PREVIEW_BASE=f"{fake.image_base}/soul-style")
    first = run_soul("styles", "--search", "y2k", "--show", env=env)
    assert first.code == 0, first.stderr
    assert len(first.lines) == 2 and all(Path(p).is_file() for p in first.lines)
    fetched = [r for r in fake.requests(server="images") if "/soul-style/" in r.path]
    assert len(fetched) == 2
    fake.stop()  # offline now: the cache answers
    again = run_soul("styles", "--search", "y2k", "--show", env=env)
    assert again.code == 0 and again.lines == first.lines
    assert again.stderr == ""


def test_a_preview_that_cannot_be_had_is_a_placeholder_not_an_error(tmp_path: Path) -> None:
    from tests.conftest import free_port, soul_env

    env = soul_env(None, SOUL_PREVIEW_BASE=f"http://127.0.0.1:{free_port()}/soul-style")
    result = run_soul("styles", "--search", "y2k", "--show", env=env)
    assert result.code == 0
    assert result.stdout == ""  # no preview file to name
    assert "no preview for 2 of 2 styles" in result.stderr


def test_show_draws_on_a_terminal_even_with_stdin_redirected(four: list[Picture]) -> None:
    """Asking the terminal needs stdin: with stdin a file, soul draws without asking."""
    import os
    import pty
    import subprocess

    from tests.conftest import SOUL, soul_env

    master, slave = pty.openpty()
    paths = [str(p.path) for p in four]
    proc = subprocess.Popen(
        [str(SOUL), "show", *paths],
        stdout=slave,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env=soul_env(None),
    )
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    assert proc.wait(timeout=20) == 0, screen[-400:]
    text = screen.decode()
    assert "▀" in text and "#1 Tokyo" not in text  # files: labelled by name
    assert "img_1.png" in text and "img_4.png" in text


def test_any_image_mode_is_drawn_not_greyed(tmp_path: Path) -> None:
    """The fake's images are palette PNGs; 16-bit grey and alpha images exist too."""
    red = Image.new("RGB", (1152, 1152), (255, 0, 0))
    red.quantize(4).save(tmp_path / "palette.png")
    red.convert("RGBA").save(tmp_path / "alpha.png")
    pictures = [Picture(tmp_path / "palette.png", "p"), Picture(tmp_path / "alpha.png", "a")]
    text = drawn(pictures, "halfblock", width=40)
    assert "38;2;255;0;0" in text and "(unreadable)" not in text


def test_odd_sizes_and_wide_terminals_do_not_break_the_grid(
    four: list[Picture], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    Image.new("RGB", (3000, 1), (0, 0, 255)).save(tmp_path / "strip.png")
    Image.new("RGB", (1, 3000), (0, 0, 255)).save(tmp_path / "pole.png")
    odd = [Picture(tmp_path / "strip.png", "strip"), Picture(tmp_path / "pole.png", "pole")]
    assert "strip" in drawn(odd, "halfblock", width=80)
    # Kitty places at most 297 columns: a wider terminal still gets its grid.
    assert "#4 Tokyo" in drawn(four, "kitty", width=320)
    capfd.readouterr()


def test_targets_that_are_not_there_are_clean_errors(fake: Fake302) -> None:
    for target, code in (("~nosuchuser/a.png", 2), ("a" * 300, 2), ("#99", 7)):
        result = run_soul("show", target, fake=fake)
        assert result.code == code, (target, result.stderr)
        assert len(result.stderr.splitlines()) == 1
