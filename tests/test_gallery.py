"""`soul gallery`: the page, its thumbnails and its safety, through the installed soul."""

from __future__ import annotations

import html
import json
import re
import shlex
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from soulcli.fake302 import Fake302
from tests.conftest import SENTINEL_KEY, run_soul, soul_env, wait_until

HOSTILE = "<script>alert(1)</script> \"quoted\" & 'single' <b>bold</b>"


def generate(fake: Fake302, where: Path, prompt: str, *extra: str) -> list[Path]:
    result = run_soul("generate", prompt, "-o", str(where), *extra, fake=fake)
    assert result.code in (0, 12), result.stderr  # 12: some images not delivered
    return [Path(line) for line in result.lines]


def gallery(folder: Path, *extra: str, fake: Fake302 | None = None) -> tuple[Path, str]:
    """Build the gallery; the page's path and the summary line."""
    result = run_soul("gallery", "-o", str(folder), *extra, fake=fake)
    assert result.code == 0, result.stderr
    assert result.lines == [str(folder.resolve() / "index.html")]
    return Path(result.lines[0]), result.stderr


def cards(page: Path) -> list[str]:
    return re.findall(r"<article .*?</article>", page.read_text("utf-8"), re.S)


def everything_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_a_card_per_task_with_thumbnails_links_facts_and_the_command_to_make_it_again(
    fake: Fake302, tmp_path: Path
) -> None:
    dog = generate(fake, tmp_path / "pics", "a dog in the rain", "-s", "Tokyo", "--seed", "7")
    generate(fake, tmp_path / "pics", "a red kite", "--ar", "16:9", "--negative", "clouds")
    page, summary = gallery(tmp_path / "gal")

    assert summary.strip() == "soul: gallery of 2 tasks, 8 images, 0.2 PTC · 8 new thumbnails"
    found = cards(page)
    assert len(found) == 2
    newest, oldest = found
    assert "a red kite" in newest and "clouds" in newest and "16:9" in newest
    assert "a dog in the rain" in oldest and "Tokyo streetstyle" in oldest
    task_id = dog[0].name.rsplit("_", 1)[0]
    for fact in (task_id, ">7<", "720p", "0.1 PTC", time.strftime("%Y-%m-%d")):
        assert fact in oldest
    for image in dog:  # each thumbnail links to its full image
        assert f'href="{image.as_uri()}"' in oldest
    thumbs = re.findall(r'src="thumbs/([0-9a-f]{32}\.jpg)"', oldest)
    assert len(thumbs) == 4
    for name in thumbs:
        with Image.open(page.parent / "thumbs" / name) as thumb:
            assert max(thumb.size) == 320 and thumb.format == "JPEG"
    command = html.unescape(re.search(r'data-command="([^"]*)"', oldest).group(1))  # type: ignore[union-attr]
    assert shlex.split(command) == ["soul", "generate", "--like", str(dog[0])]
    # The command is right: it asks for the same request again.
    again = run_soul(*shlex.split(command)[1:], "--dry-run", "--json", fake=fake)
    body = json.loads(again.stdout)["body"]
    assert (body["prompt"], body["seed"]) == ("a dog in the rain", 7)
    assert fake.post_count() == 2  # the dry run sent nothing


def test_the_folder_holds_only_the_page_its_assets_and_thumbnails_and_never_the_key(
    fake: Fake302, tmp_path: Path
) -> None:
    generate(fake, tmp_path / "pics", "a dog")
    page, _ = gallery(tmp_path / "gal")
    names = everything_in(tmp_path / "gal")
    thumbs = {n for n in names if n.startswith("thumbs/") and n != "thumbs/manifest.json"}
    assert len(thumbs) == 4
    assert names - thumbs == {
        "index.html",
        "assets",
        "assets/gallery.css",
        "assets/gallery.js",
        "thumbs",
        "thumbs/manifest.json",
    }
    for path in (tmp_path / "gal").rglob("*"):
        if path.is_file():
            assert SENTINEL_KEY.encode() not in path.read_bytes()
    text = page.read_text("utf-8")
    assert "http://" not in text and "https://" not in text
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text)
    assert csp is not None
    assert "default-src 'none'" in csp.group(1) and "script-src 'self'" in csp.group(1)
    assert "img-src 'self'" in csp.group(1) and "style-src 'self'" in csp.group(1)


def test_user_and_server_text_is_escaped_everywhere(fake: Fake302, tmp_path: Path) -> None:
    generate(fake, tmp_path / "pics", HOSTILE, "--negative", "<img src=x onerror=alert(2)>")
    page, _ = gallery(tmp_path / "gal")
    text = page.read_text("utf-8")
    assert "<script>alert" not in text and "<img src=x" not in text and "<b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    # Only the page's own one script tag, from the gallery folder.
    assert re.findall(r"<script[^>]*>", text) == ['<script src="assets/gallery.js" defer>']
    # No attribute value is cut short by a quote in the prompt.
    for value in re.findall(r'data-search="([^"]*)"', text):
        assert "quoted" in html.unescape(value)


def test_rebuilding_makes_only_new_thumbnails_and_marks_moved_images_missing(
    fake: Fake302, tmp_path: Path
) -> None:
    first = generate(fake, tmp_path / "pics", "a dog")
    folder = tmp_path / "gal"
    _, summary = gallery(folder)
    assert "8 new" not in summary and "4 new thumbnails" in summary
    made = {p: p.stat().st_mtime_ns for p in (folder / "thumbs").glob("*.jpg")}
    assert len(made) == 4

    _, summary = gallery(folder)
    assert summary.strip().endswith("· 0 new thumbnails")
    generate(fake, tmp_path / "pics", "a cat")
    _, summary = gallery(folder)
    assert summary.strip().endswith("· 4 new thumbnails")
    assert {p: p.stat().st_mtime_ns for p in made} == made  # the old ones were not redone

    first[1].rename(tmp_path / "moved.png")
    first[2].unlink()
    page, summary = gallery(folder)
    assert "2 tasks, 6 images (2 missing)" in summary
    dog = cards(page)[1]
    assert dog.count('class="missing"') == 2 and "#2 · not on disk" in dog


def test_an_image_that_was_never_delivered_shows_its_status(fake: Fake302, tmp_path: Path) -> None:
    fake.settings.outcomes = ["completed", "nsfw", "completed", "completed"]
    generate(fake, tmp_path / "pics", "a dog")
    page, summary = gallery(tmp_path / "gal")
    assert "3 images (1 missing)" in summary
    assert "#2 · nsfw" in cards(page)[0]


def test_a_sweep_is_one_card_with_a_tile_per_style(fake: Fake302, tmp_path: Path) -> None:
    result = run_soul(
        "sweep", "a fox", "--styles", "Tokyo,Y2K,Fisheye", "--seed", "5",
        "-o", str(tmp_path / "sweep"), "--no-show", "--yes", fake=fake,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    generate(fake, tmp_path / "pics", "a dog")
    page, summary = gallery(tmp_path / "gal")
    assert "gallery of 4 tasks, 16 images, 0.4 PTC · 7 new thumbnails" in summary
    (sweep,) = [c for c in cards(page) if 'class="card sweep"' in c]
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", sweep)
    assert captions == ["Tokyo streetstyle", "Y2K", "Fisheye"]
    assert "0.3 PTC" in sweep and ">3 (sweep)<" in sweep
    command = html.unescape(re.search(r'data-command="([^"]*)"', sweep).group(1))  # type: ignore[union-attr]
    assert shlex.split(command)[:6] == [
        "soul", "sweep", "a fox", "--styles", "Tokyo streetstyle,Y2K,Fisheye", "--seed"
    ]  # fmt: skip
    assert shlex.split(command)[-2:] == ["-o", str(tmp_path / "sweep")]
    # Run again from anywhere, the command finds the same sweep and pays for nothing.
    again = run_soul(*shlex.split(command)[1:], "--no-show", fake=fake, cwd=tmp_path)
    assert again.code == 0 and "3 already done, 0 new" in again.stderr
    assert fake.post_count() == 4


def test_filters_choose_the_tasks_on_the_page(fake: Fake302, tmp_path: Path) -> None:
    generate(fake, tmp_path / "pics", "a dog in the rain", "-s", "Tokyo")
    generate(fake, tmp_path / "pics", "a cat", "-s", "Y2K")
    page, summary = gallery(tmp_path / "gal", "--style", "tokyo")
    assert len(cards(page)) == 1 and "a dog in the rain" in page.read_text("utf-8")
    assert "only --style tokyo" in page.read_text("utf-8")
    page, _ = gallery(tmp_path / "gal", "--search", "cat", "--since", "1d")
    assert [("a cat" in c) for c in cards(page)] == [True]
    page, summary = gallery(tmp_path / "gal", "--since", "2999-01-01")
    assert cards(page) == [] and "gallery of 0 tasks" in summary


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--style", "Tokio"], "unknown style 'Tokio'"),
        (["--since", "last week"], "--since 'last week' is not an age"),
    ],
)
def test_bad_filters_are_one_line_and_write_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_soul("gallery", "-o", str(tmp_path / "gal"), *args)
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"soul: error: {message}")
    assert not (tmp_path / "gal").exists()


def test_a_folder_with_other_files_is_refused(fake: Fake302, tmp_path: Path) -> None:
    generate(fake, tmp_path / "pics", "a dog")
    result = run_soul("gallery", "-o", str(tmp_path / "pics"))
    assert result.code == 2 and result.stdout == ""
    assert "is not empty and holds no soul gallery; nothing was written" in result.stderr
    assert not (tmp_path / "pics" / "index.html").exists()
    assert not (tmp_path / "pics" / "thumbs").exists()


def test_the_default_folder_is_in_the_data_directory_and_leftovers_of_a_kill_go(
    fake: Fake302, tmp_path: Path
) -> None:
    generate(fake, tmp_path / "pics", "a dog")
    folder = tmp_path / "data" / "gallery"
    folder.mkdir(parents=True)
    # What a build killed mid-write leaves: a temp file of a process that has ended.
    dead = 2**22 + 12345
    (folder / f".index.html.{dead}.part").write_text("half a page")
    result = run_soul("gallery")
    assert result.code == 0, result.stderr
    assert result.lines == [str(folder / "index.html")]
    assert not (folder / f".index.html.{dead}.part").exists()


def test_an_empty_ledger_makes_a_page_that_says_so(tmp_path: Path) -> None:
    page, summary = gallery(tmp_path / "gal")
    assert "gallery of 0 tasks, 0 images, 0 PTC" in summary
    assert "No tasks yet" in page.read_text("utf-8")


def test_open_hands_the_page_to_the_browser(fake: Fake302, tmp_path: Path) -> None:
    generate(fake, tmp_path / "pics", "a dog")
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {opened}\n')
    browser.chmod(0o755)
    env = soul_env(None, BROWSER=f"no-such-browser:{browser} --new-window")
    result = run_soul("gallery", "-o", str(tmp_path / "gal"), "--open", env=env)
    assert result.code == 0, result.stderr
    assert result.lines == [str(tmp_path / "gal" / "index.html")]
    wait_until(opened.exists, "the browser script to run")
    wait_until(lambda: opened.read_text() != "", "the browser script to write")
    uri = (tmp_path / "gal" / "index.html").as_uri()
    assert opened.read_text().splitlines() == ["--new-window", uri]


def test_open_with_no_browser_and_no_display_says_where_the_page_is(tmp_path: Path) -> None:
    env = soul_env(None)
    for name in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    result = run_soul("gallery", "-o", str(tmp_path / "gal"), "--open", env=env, timeout=20)
    assert result.code == 0 and result.lines == [str(tmp_path / "gal" / "index.html")]
    assert "found no web browser to open it with; open " in result.stderr


def test_a_browser_that_stays_open_does_not_hold_soul_up(tmp_path: Path) -> None:
    browser = tmp_path / "browser"
    browser.write_text("#!/bin/sh\nsleep 30\n")
    browser.chmod(0o755)
    result = run_soul(
        "gallery", "-o", str(tmp_path / "gal"), "--open", env=soul_env(None, BROWSER=str(browser)),
        timeout=10,
    )  # fmt: skip
    assert result.code == 0 and "no web browser" not in result.stderr


def test_copies_of_one_image_share_one_thumbnail(fake: Fake302, tmp_path: Path) -> None:
    # The fake answers the same prompt and seed with the same bytes, as a server may.
    for _ in range(3):
        generate(fake, tmp_path / "pics", "dup test", "--seed", "42")
    page, summary = gallery(tmp_path / "gal")
    assert "gallery of 3 tasks, 12 images, 0.3 PTC · 4 new thumbnails" in summary
    assert "thumbnail not written" not in page.read_text("utf-8")
    assert len(list((tmp_path / "gal" / "thumbs").glob("*.jpg"))) == 4


def test_what_file_managers_leave_does_not_make_a_gallery_a_stranger(
    fake: Fake302, tmp_path: Path
) -> None:
    generate(fake, tmp_path / "pics", "a dog")
    folder = tmp_path / "gal"
    gallery(folder)
    (folder / ".DS_Store").write_bytes(b"\0")
    (folder / "thumbs" / "Thumbs.db").write_bytes(b"\0")
    gallery(folder)


@pytest.mark.parametrize("stranger", ["thumbs/holiday.png", "assets/notes.txt", "notes.txt"])
def test_a_folder_of_your_own_is_refused_even_when_it_has_a_thumbs_folder(
    tmp_path: Path, stranger: str
) -> None:
    folder = tmp_path / "mine"
    (folder / stranger).parent.mkdir(parents=True, exist_ok=True)
    (folder / stranger).write_bytes(b"mine")
    result = run_soul("gallery", "-o", str(folder))
    assert result.code == 2 and "holds no soul gallery; nothing was written" in result.stderr
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        stranger
    ]


def test_a_batch_file_named_sweep_is_not_taken_for_a_sweep(fake: Fake302, tmp_path: Path) -> None:
    (tmp_path / "sweep").write_text("a lighthouse\na windmill\na castle\n")
    result = run_soul("batch", "sweep", "-o", str(tmp_path / "out"), fake=fake, cwd=tmp_path)
    assert result.code == 0, result.stderr
    page, summary = gallery(tmp_path / "gal")
    assert "gallery of 3 tasks, 12 images" in summary
    found = cards(page)
    assert len(found) == 3 and not [c for c in found if "sweep" in c.split(">")[0]]


def test_a_killed_first_build_keeps_the_thumbnails_it_made(fake: Fake302, tmp_path: Path) -> None:
    generate(fake, tmp_path / "pics", "a dog")
    generate(fake, tmp_path / "pics", "a cat")
    folder = tmp_path / "gal"
    gallery(folder)
    # As if killed before it wrote its manifest (and its page): the thumbnails stay.
    (folder / "thumbs" / "manifest.json").unlink()
    (folder / "index.html").unlink()
    page, summary = gallery(folder)
    assert summary.strip().endswith("· 0 new thumbnails")
    assert len(re.findall(r'<img src="thumbs/', page.read_text("utf-8"))) == 8


def test_unreadable_images_are_not_decoded_again_and_old_thumbnails_go(
    fake: Fake302, tmp_path: Path
) -> None:
    saved = generate(fake, tmp_path / "pics", "a dog")
    saved[0].write_bytes(saved[0].read_bytes()[:200])
    folder = tmp_path / "gal"
    gallery(folder)
    manifest = json.loads((folder / "thumbs" / "manifest.json").read_text())
    assert list(manifest["failed"].values()) == ["unreadable"]
    old = folder / "thumbs" / ("0" * 32 + ".webp")  # made by an older soul
    old.write_bytes(b"RIFF")
    page, summary = gallery(folder)
    assert summary.strip().endswith("· 0 new thumbnails") and "#1 · unreadable" in page.read_text()
    assert not old.exists()


def test_a_relative_path_in_the_ledger_is_read_from_the_task_folder(
    fake: Fake302, tmp_path: Path
) -> None:
    import sqlite3

    saved = generate(fake, tmp_path / "pics", "a dog")
    with sqlite3.connect(tmp_path / "data" / "tasks.db") as db:
        (images,) = db.execute("SELECT images FROM tasks").fetchone()
        entries = json.loads(images)
        entries[0]["path"] = saved[0].name
        entries[1]["path"] = 12  # not a path at all
        db.execute("UPDATE tasks SET images = ?", (json.dumps(entries),))
    page, summary = gallery(tmp_path / "gal")
    card = cards(page)[0]
    assert f'href="{saved[0].as_uri()}"' in card and "3 images (1 missing)" in summary


def test_an_image_pillow_cannot_read_still_links_to_its_file(fake: Fake302, tmp_path: Path) -> None:
    fake.settings.image_format = "heic"
    saved = generate(fake, tmp_path / "pics", "a dog")
    assert saved and all(p.suffix == ".heic" for p in saved)
    page, summary = gallery(tmp_path / "gal")
    assert "4 images, 0.1 PTC · 0 new thumbnails" in summary  # counted: they are on disk
    card = cards(page)[0]
    assert card.count("no thumbnail for HEIC") == 4
    for image in saved:
        assert f'href="{image.as_uri()}"' in card


def test_a_damaged_image_is_marked_unreadable(fake: Fake302, tmp_path: Path) -> None:
    saved = generate(fake, tmp_path / "pics", "a dog")
    saved[0].write_bytes(saved[0].read_bytes()[:200])  # cut short after the download
    page, summary = gallery(tmp_path / "gal")
    assert "3 new thumbnails" in summary
    assert "#1 · unreadable" in cards(page)[0]


def test_a_folder_that_cannot_be_written_is_one_line_and_the_last_page_stays_whole(
    fake: Fake302, tmp_path: Path, tmpfs: Callable[[str, str], Path]
) -> None:
    generate(fake, tmp_path / "pics", "a dog")
    read_only = tmpfs("ro", "ro,size=16k")
    result = run_soul("gallery", "-o", str(read_only / "gal"))
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"soul: error: cannot create the gallery folder {read_only}")

    small = tmpfs("small", "size=96k")
    gallery(small / "gal")  # the page and 4 thumbnails fit
    before = (small / "gal" / "index.html").read_bytes()
    for n in range(6):
        generate(fake, tmp_path / "pics", f"a cat {n}")
    result = run_soul("gallery", "-o", str(small / "gal"))
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"soul: error: cannot write the gallery in {small}")
    assert len(result.stderr.splitlines()) == 1
    assert (small / "gal" / "index.html").read_bytes() == before
    assert not list((small / "gal").rglob("*.part"))


def test_a_killed_first_build_leaves_a_folder_the_next_build_takes(
    fake: Fake302, tmp_path: Path
) -> None:
    generate(fake, tmp_path / "pics", "a dog")
    folder = tmp_path / "gal"
    (folder / "thumbs").mkdir(parents=True)  # what a build killed before its page leaves
    (folder / "thumbs" / ".0123.jpg.999999999.part").write_bytes(b"half")
    page, _ = gallery(folder)
    assert len(cards(page)) == 1
    assert not list(folder.rglob("*.part"))


def test_two_builds_at_once_both_finish_with_a_whole_page(fake: Fake302, tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import SOUL, soul_env

    for n in range(3):
        generate(fake, tmp_path / "pics", f"a dog {n}")
    folder = tmp_path / "gal"
    builds = [
        subprocess.Popen(
            [str(SOUL), "gallery", "-o", str(folder)],
            env=soul_env(None),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outcomes = [(b.wait(timeout=60), b.communicate()) for b in builds]
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    page = folder / "index.html"
    assert len(cards(page)) == 3
    referenced = set(re.findall(r'src="thumbs/([^"]+)"', page.read_text("utf-8")))
    assert len(referenced) == 12
    assert all((folder / "thumbs" / name).is_file() for name in referenced)
    assert not [p for p in folder.rglob("*.part")]
