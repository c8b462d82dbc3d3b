"""`soul sweep`: one request per style with one seed, priced first, resumable, and a sheet."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from soulcli.fake302 import Fake302
from tests.conftest import run_soul


def bodies(fake: Fake302) -> list[dict[str, object]]:
    return [json.loads(request.body) for request in fake.requests("POST")]


def test_a_sweep_sends_one_request_per_style_with_one_seed_and_ends_with_a_sheet(
    fake: Fake302, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = run_soul(
        "sweep", "a dog", "--styles", "Tokyo,Y2K,Fisheye", "--seed", "7", "-o", str(out), fake=fake
    )
    assert done.code == 0, done.stderr
    sent = bodies(fake)
    assert len(sent) == 3 and {b["seed"] for b in sent} == {7}
    assert {b["prompt"] for b in sent} == {"a dog"}
    assert len({b["style_id"] for b in sent}) == 3
    assert len({(b["aspect_ratio"], b["quality"], b["negative_prompt"]) for b in sent}) == 1
    assert "3 requests · 0.3 PTC" in done.stderr
    sheet = Path(done.lines[-1])
    assert sheet.parent == out and sheet.suffix == ".png"
    with Image.open(sheet) as image:
        assert image.width > image.height / 2  # three tiles side by side, not a column
    # The images: 4 per style, named after the style and seed.
    assert len(list(out.glob("tokyo-streetstyle-7_*.png"))) == 4
    assert len(done.lines) == 3 * 4 + 1


def test_without_a_seed_one_is_picked_once_and_a_rerun_sends_nothing(
    fake: Fake302, tmp_path: Path
) -> None:
    args = ["sweep", "a fox", "--search", "y2k", "-o", str(tmp_path)]
    first = run_soul(*args, fake=fake)
    assert first.code == 0, first.stderr
    seeds = {b["seed"] for b in bodies(fake)}
    assert len(seeds) == 1 and f"seed {seeds.pop()}" in first.stderr
    assert fake.post_count() == 2  # Y2K and Y2K posters
    again = run_soul(*args, fake=fake)
    assert again.code == 0, again.stderr
    assert fake.post_count() == 2  # resumed: nothing paid twice
    assert again.lines[-1] == first.lines[-1]  # the same sheet, made again


def test_all_styles_costs_six_ptc_and_needs_a_yes_without_a_terminal(
    fake: Fake302, tmp_path: Path
) -> None:
    refused = run_soul("sweep", "a dog", "--all", "-o", str(tmp_path), fake=fake)
    assert refused.code == 15
    assert "60 requests · 6 PTC" in refused.stderr and "--yes" in refused.stderr
    assert fake.post_count() == 0
    capped = run_soul(
        "sweep", "a dog", "--all", "--yes", "--max-cost", "1", "-o", str(tmp_path), fake=fake
    )
    assert capped.code == 15 and "above --max-cost" in capped.stderr
    assert fake.post_count() == 0


def test_choosing_the_styles_is_checked_before_anything_is_sent(fake: Fake302) -> None:
    for args in (
        [],
        ["--all", "--search", "y2k"],
        ["--styles", "Tokio"],
        ["--search", "zzzz"],
        ["--styles", ","],
    ):
        result = run_soul("sweep", "a dog", *args, fake=fake)
        assert result.code == 2, (args, result.stderr)
        assert result.stdout == ""
    assert fake.post_count() == 0


def test_a_style_with_nothing_delivered_is_a_placeholder_on_the_sheet(tmp_path: Path) -> None:
    from soulcli.fake302 import FakeSettings
    from tests.conftest import SENTINEL_KEY

    settings = FakeSettings(
        api_key=SENTINEL_KEY, queue_seconds=0.1, run_seconds=0.2, outcomes=["nsfw"] * 4
    )
    with Fake302(settings) as fake:
        done = run_soul("sweep", "a dog", "--styles", "Tokyo,Y2K", "-o", str(tmp_path), fake=fake)
    assert done.code == 16  # the lines did not complete
    sheet = Path(done.lines[-1])
    assert sheet.is_file()
    with Image.open(sheet) as image:
        assert image.width > 0


def test_with_json_every_line_is_json_and_the_sheet_is_the_last_object(
    fake: Fake302, tmp_path: Path
) -> None:
    done = run_soul(
        "sweep", "a cat", "--styles", "Tokyo,Y2K", "--json", "-o", str(tmp_path), fake=fake
    )
    assert done.code == 0, done.stderr
    objects = [json.loads(line) for line in done.lines]
    # One object per style, in the order they finish, then the sheet.
    assert sorted(o["style"]["name"] for o in objects[:-1]) == ["Tokyo streetstyle", "Y2K"]
    assert Path(objects[-1]["sheet"]).is_file() and objects[-1]["styles"] == 2


def test_a_sheet_that_cannot_be_written_is_a_warning_after_paying(
    fake: Fake302, tmp_path: Path
) -> None:
    args = ["sweep", "a cat", "--styles", "Tokyo", "--seed", "5", "-o", str(tmp_path)]
    first = run_soul(*args, fake=fake)
    sheet = Path(first.lines[-1])
    sheet.unlink()
    sheet.mkdir()  # a directory where the sheet goes
    again = run_soul(*args, fake=fake)
    assert again.code == 0
    assert "could not write the contact sheet" in again.stderr
    assert fake.post_count() == 1


def test_two_sweeps_of_one_prompt_and_seed_keep_their_own_sheets(
    fake: Fake302, tmp_path: Path
) -> None:
    first = run_soul(
        "sweep", "a dog", "--styles", "Y2K", "--seed", "7", "-o", str(tmp_path), fake=fake
    )
    second = run_soul(
        "sweep", "a dog", "--styles", "Glitch", "--seed", "7", "-o", str(tmp_path), fake=fake
    )
    assert first.code == second.code == 0
    assert first.lines[-1] != second.lines[-1]
    assert Path(first.lines[-1]).is_file() and Path(second.lines[-1]).is_file()


def test_a_bad_seed_or_prompt_is_refused_before_the_price_is_said(fake: Fake302) -> None:
    for args in (["a dog", "--seed", "0"], ["  "]):
        result = run_soul("sweep", *args, "--styles", "Tokyo,Y2K", fake=fake)
        assert result.code == 2, result.stderr
        assert "requests" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert fake.post_count() == 0
