"""The fake's images show their request: different requests look different, equal ones are equal."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from PIL import Image, ImageStat

from soulcli.fake302 import SIZES, Fake302, FakeSettings, FakeTask, image_bytes, picture_png
from tests.conftest import run_soul

TOKYO = "99de6fc5-1177-49b9-b2e9-19e17d95bcaf"  # Tokyo streetstyle


def body(
    prompt: str = "a dog", style_id: str = TOKYO, seed: int = 7, **extra: str
) -> dict[str, object]:
    return {
        "quality": "720p",
        "aspect_ratio": "1:1",
        "prompt": prompt,
        "enhance_prompt": False,
        "seed": seed,
        "style_id": style_id,
        "negative_prompt": "",
        **extra,
    }


def task(task_id: str, request: dict[str, object]) -> FakeTask:
    return FakeTask(task_id, request, 0.0, ["completed"] * 4)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()  # decodes every pixel: a broken file raises here
    return image


def mean_colour(path: Path) -> tuple[float, ...]:
    with Image.open(path) as image:
        return tuple(ImageStat.Stat(image.convert("RGB")).mean)


def test_different_requests_give_visibly_different_images_of_the_real_size(
    fake: Fake302, tmp_path: Path
) -> None:
    runs = [
        ("a dog in the rain", "Tokyo", "11", "16:9"),
        ("a cat on a piano", "iPhone", "12", "3:4"),
    ]
    colours: list[list[tuple[float, ...]]] = []
    for number, (prompt, style, seed, ratio) in enumerate(runs):
        out = tmp_path / f"run{number}"
        args = ["generate", prompt, "-s", style, "--seed", seed, "--ar", ratio, "-o", str(out)]
        result = run_soul(*args, "--json", fake=fake)
        assert result.code == 0, result.stderr
        paths = [Path(image["path"]) for image in json.loads(result.stdout)["images"]]
        assert len(paths) == 4
        for path in paths:
            with Image.open(path) as image:
                assert image.format == "PNG"
                assert image.size == SIZES[ratio]["720p"]
                image.load()
        colours.append([mean_colour(path) for path in paths])
    # Every image differs from every image of the other request, by a visible amount.
    for one in colours[0]:
        for other in colours[1]:
            assert max(abs(a - b) for a, b in zip(one, other, strict=True)) > 8, (one, other)
    # The four images of one request differ from each other too (index, shapes, label).
    assert len(set(colours[0])) == 4


def test_the_same_request_gives_the_same_bytes_and_a_change_gives_others() -> None:
    settings = FakeSettings()
    first = image_bytes(task("higgsfield_a", body()), 2, "raw", settings)
    again = image_bytes(task("higgsfield_b", body()), 2, "raw", settings)
    assert first == again
    assert decoded(first).size == (1152, 1152)
    for changed in (body(prompt="a cat"), body(seed=8), body(style_id=TOKYO[:-1] + "2")):
        assert image_bytes(task("higgsfield_c", changed), 2, "raw", settings) != first
    assert image_bytes(task("higgsfield_a", body()), 3, "raw", settings) != first


def test_options_keep_working_min_small_and_padding() -> None:
    request = body(quality="1080p", aspect_ratio="3:2")
    assert decoded(image_bytes(task("t", request), 1, "raw", FakeSettings())).size == (2048, 1365)
    assert decoded(image_bytes(task("t", request), 1, "min", FakeSettings())).size == (512, 341)
    small = FakeSettings(small_images=True)
    assert decoded(image_bytes(task("t", request), 1, "raw", small)).size == (64, 64)
    padded = FakeSettings(image_size=300_000)
    full = image_bytes(task("t", request), 1, "raw", padded)
    assert len(full) == 300_000 and full.endswith(b"IEND\xaeB`\x82")
    assert decoded(full).size == (2048, 1365)
    assert len(image_bytes(task("t", request), 1, "min", padded)) < 300_000  # never padded
    # A size below the picture's own: a plainer picture of the same size, padded exactly.
    tight = image_bytes(task("t", request), 1, "raw", FakeSettings(image_size=16 * 1024))
    assert len(tight) == 16 * 1024 and decoded(tight).size == (2048, 1365)
    trailer = FakeSettings(image_trailer=b"MOTION")
    assert image_bytes(task("t", request), 1, "raw", trailer).endswith(b"IEND\xaeB`\x82MOTION")


def test_a_real_size_image_is_made_quickly() -> None:
    started = time.perf_counter()
    data = picture_png(2048, 2048, "timing", TOKYO, 1_000_000, 4)
    elapsed = time.perf_counter() - started
    assert decoded(data).size == (2048, 2048)
    # About 30 ms here; the bound is loose so a busy machine does not fail the test.
    assert elapsed < 0.5, elapsed
