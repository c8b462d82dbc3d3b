"""Real image files: trailers after the end marker are whole, cut files are not."""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path

import pytest

from soulcli.fake302 import SAMPLES, Fake302, make_png
from soulcli.imagefiles import NotWhole, check_whole, same_content, sniff_extension
from tests.conftest import run_soul

PNG = make_png(16, 16)
JPEG = SAMPLES["jpeg"]()
# Two frames, a comment, global and local colour tables (made with Pillow).
GIF = base64.b64decode(
    "R0lGODlhCAAIAIEAAAAAAP8AAAD/AAAA/yH+FW1hZGUgZm9yIHNvdWwncyB0ZXN0cwAsAAAAAAgACAAACB4AAQQQ"
    "MEAgwYEFEQIgaDBhQoYDGzZUqBAixIcPAwIAIfkEAQAABAAsAAAAAAgACACBAAAA/wAAAP8AAAD/CB8ABwgIAEAg"
    "wYIDEQYgaBBhwoYDICZUqJDhQwEXGQYEADs="
)
AVIF = SAMPLES["avif"]()
HEIC = SAMPLES["heic"]()
# What cameras and phones put after the end marker: maker notes, padding, a motion photo
# (an MP4 that itself holds bytes that look like JPEG markers).
TRAILERS = [
    b"\x00" * 15,
    b"\x00" * 4096,
    b"MakerNote\x00Canon" * 8,
    b"\x00\x00\x00\x18ftypmp42" + b"\xff\xd8\xff\xe0 motion photo \xff\xd9" * 50,
]


def whole(data: bytes) -> bool:
    extension = sniff_extension(data[:64])
    assert extension is not None
    try:
        check_whole(extension, io.BytesIO(data), len(data))
    except NotWhole:
        return False
    return True


def with_exif_thumbnail(jpeg: bytes) -> bytes:
    """The JPEG with an APP1 segment holding a thumbnail, end marker included."""
    thumbnail = b"\xff\xd8\xff\xdb\x00\x04\x00\x00\xff\xd9"
    payload = b"Exif\x00\x00" + b"II*\x00" + thumbnail * 3
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg[:2] + segment + jpeg[2:]


@pytest.mark.parametrize("trailer", TRAILERS, ids=["zeros15", "zeros4k", "makernote", "motion"])
@pytest.mark.parametrize(
    "image",
    [PNG, JPEG, with_exif_thumbnail(JPEG), GIF, AVIF, HEIC],
    ids=["png", "jpg", "exif", "gif", "avif", "heic"],
)
def test_bytes_after_the_end_marker_are_allowed(image: bytes, trailer: bytes) -> None:
    assert whole(image + trailer)


@pytest.mark.parametrize(
    "image",
    [PNG, JPEG, with_exif_thumbnail(JPEG), AVIF, GIF],
    ids=["png", "jpg", "exif", "avif", "gif"],
)
def test_every_cut_before_the_end_marker_is_caught(image: bytes) -> None:
    assert whole(image)
    for cut in range(64, len(image) - 1):
        assert not whole(image[:cut]), f"a file cut at {cut} of {len(image)} passed as whole"


def test_jpeg_scan_data_with_stuffed_bytes_and_restart_markers_reads_to_the_end() -> None:
    header, scan_and_end = JPEG.split(b"\xff\xda", 1)
    sos_length = int.from_bytes(scan_and_end[:2], "big")
    sos, rest = scan_and_end[:sos_length], scan_and_end[sos_length:]
    # 0xFF00 (a stuffed 0xFF) and restart markers belong to the scan; they never end it.
    busy = b"\x12\xff\x00\x34" * 300 + b"\xff\xd3" + b"\x56\xff\x00" * 300
    image = header + b"\xff\xda" + sos + busy + rest
    assert whole(image + b"trailer")
    assert not whole(image[: len(header) + 600])


def test_stray_bytes_between_jpeg_segments_are_skipped_as_decoders_do() -> None:
    header, rest = JPEG.split(b"\xff\xdb", 1)  # before the first quantisation table
    assert whole(header + b"\x00\x12stray" + b"\xff\xdb" + rest)
    assert not whole(header + b"\x00\x12stray")


def test_formats_are_named_from_their_bytes() -> None:
    assert sniff_extension(PNG[:64]) == ".png"
    assert sniff_extension(JPEG[:64]) == ".jpg"
    assert sniff_extension(AVIF[:64]) == ".avif"
    assert sniff_extension(HEIC[:64]) == ".heic"
    mif1_only = AVIF[:8] + b"mif1\x00\x00\x00\x00mif1miafmiafMA1B" + AVIF[32:]
    assert sniff_extension(mif1_only[:64]) == ".heif"
    assert sniff_extension(b"\x00\x00\x00\x20ftypmp42" + b"\x00" * 20) is None


def test_files_are_compared_a_chunk_at_a_time() -> None:
    big = b"\x89" * (3 * 1024 * 1024)
    assert same_content(io.BytesIO(big), io.BytesIO(big))
    assert not same_content(io.BytesIO(big), io.BytesIO(big[:-1] + b"\x00"))
    assert not same_content(io.BytesIO(big), io.BytesIO(big + b"\x00"))


@pytest.mark.parametrize("image_format", ["png", "jpeg"])
def test_images_with_trailers_are_saved_at_full_size(
    fake: Fake302, out_dir: Path, image_format: str
) -> None:
    fake.settings.image_format = image_format
    fake.settings.image_trailer = TRAILERS[2]
    result = run_soul("generate", "a dog", "--json", "-o", str(out_dir), fake=fake)
    assert result.code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert [image["variant"] for image in payload["images"]] == ["raw"] * 4
    assert all(image["url"].endswith("/raw.png") for image in payload["images"])
    assert "preview" not in result.stderr
    for image in payload["images"]:
        assert Path(image["path"]).read_bytes().endswith(TRAILERS[2])
    assert not any("/min" in r.path for r in fake.requests(server="images"))


@pytest.mark.parametrize(
    ("image_format", "content_type", "extension"),
    [
        ("avif", "image/png", ".avif"),
        ("heic", "application/octet-stream", ".heic"),
        ("jpeg", "image/webp", ".jpg"),
        ("png", "image/avif", ".png"),
    ],
)
def test_the_bytes_name_the_file_whatever_the_content_type_says(
    fake: Fake302, out_dir: Path, image_format: str, content_type: str, extension: str
) -> None:
    fake.settings.image_format = image_format
    fake.settings.image_content_type = content_type
    result = run_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    assert result.code == 0, result.stderr
    assert [Path(p).suffix for p in result.lines] == [extension] * 4


def test_fetch_into_a_folder_that_has_the_images_reuses_them(fake: Fake302, out_dir: Path) -> None:
    first = run_soul("generate", "a dog", "-o", str(out_dir), fake=fake)
    task_id = Path(first.lines[0]).name.rsplit("_", 1)[0]
    again = run_soul("fetch", task_id, "--out", str(out_dir), fake=fake)
    assert again.code == 0, again.stderr
    assert again.lines == first.lines  # identical files found by comparing, not renamed -2
    assert sorted(p.name for p in out_dir.glob("*.png")) == sorted(
        Path(p).name for p in first.lines
    )


def big_gif(rng: random.Random, size: int) -> bytes:
    """A structurally valid GIF of about `size` bytes, its data in sub-blocks of any length."""
    body = b"GIF89a" + (64).to_bytes(2, "little") * 2 + b"\x00\x00\x00"
    body += b"\x2c" + b"\x00" * 4 + (64).to_bytes(2, "little") * 2 + b"\x00" + b"\x08"
    while len(body) < size:
        length = rng.randint(1, 255)
        body += bytes([length]) + rng.randbytes(length)
    return body + b"\x00\x3b"


def jpeg_with_big_segments(count: int) -> bytes:
    """The sample JPEG behind `count` APP2 segments of 60,000 bytes (as large ICC data)."""
    segment = b"\xff\xe2" + (60_002).to_bytes(2, "big") + b"ICC_PROFILE\x00" + b"\x5a" * 59_988
    return JPEG[:2] + segment * count + JPEG[2:]


@pytest.mark.parametrize("kind", ["gif", "jpeg"])
def test_files_larger_than_the_read_window_are_walked_correctly(kind: str) -> None:
    rng = random.Random(11)
    image = big_gif(rng, 2_600_000) if kind == "gif" else jpeg_with_big_segments(40)
    assert len(image) > 2 * 1024 * 1024
    assert whole(image) and whole(image + b"trailer bytes")
    for cut in sorted(rng.sample(range(64, len(image) - 1), 25)):
        assert not whole(image[:cut]), f"a {kind} cut at {cut} of {len(image)} passed as whole"
