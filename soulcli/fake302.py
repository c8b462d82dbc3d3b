"""A fake 302.AI Soul API and image host on 127.0.0.1, for tests, demos and credit-free pipelines.

Run it with `python -m soulcli.fake302`; tests start it in-process with `Fake302()`.
It follows the API page in the project's shared notes: bearer auth, a validated
submit body, both documented submit answers, jobs moving queued -> in_progress ->
terminal over configurable times, and faults injected on demand. A second port is the
image host: each result is a real PNG that shows its request (style name, image number,
colours from prompt and seed), and /soul-style/ serves the catalog's style previews.
It records every request it receives.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import re
import secrets
import socket
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_KEY = "sk-fake302-demo-key-0000000000000000000000000000"
SIZES = {  # (ratio, quality) -> (width, height), as reported for the upstream model
    "1:1": {"720p": (1152, 1152), "1080p": (1536, 1536)},
    "3:4": {"720p": (1152, 1536), "1080p": (1536, 2048)},
    "4:3": {"720p": (1536, 1152), "1080p": (2048, 1536)},
    "2:3": {"720p": (1024, 1536), "1080p": (1365, 2048)},
    "3:2": {"720p": (1536, 1024), "1080p": (2048, 1365)},
    "9:16": {"720p": (864, 1536), "1080p": (1152, 2048)},
    "16:9": {"720p": (1536, 864), "1080p": (2048, 1152)},
}
QUALITY_NAMES = {"720p": "720p", "1080p": "1080p", "basic": "720p", "high": "1080p"}
UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")

SUBMIT_FAULTS = (
    "429",
    "500",
    "502",
    "503",
    "drop",
    "hang",
    "html",
    "no_id",
    "401",
    "402",
    "403",
    "422",
)
POLL_FAULTS = (
    "429",
    "500",
    "502",
    "503",
    "html",
    "truncated",
    "404",
    "drop",
    "shrink",
    "unknown_status",
    "regress",
    # Refusals the API page expects on any request, not only a submit (soul doctor polls).
    "402",
    "403",
)
IMAGE_FAULTS = ("truncate", "cut", "html", "500", "404", "redirect", "redirect_http")


@dataclass
class FakeSettings:
    """How the fake behaves; tests change these on a running server."""

    api_key: str = DEFAULT_KEY
    queue_seconds: float = 0.3
    run_seconds: float = 0.7
    job_stagger: float = 0.0  # extra seconds between the jobs' completions
    # One job per entry (the real API lists 4; other shapes list fewer): each job's final
    # status, such as completed, nsfw, failed or error.
    outcomes: list[str] = field(default_factory=lambda: ["completed"] * 4)
    top_level_status: bool = True  # False: answer polls without a task-level `status`
    queued_word: str = "queued"  # how jobs and the task say "queued" (pending, waiting)
    running_word: str = "in_progress"  # and "in progress" (processing, running)
    response_shape: str = "id"  # "id" (the page's example), "code" (its schema), "task_id"
    never_finish: bool = False
    empty_jobs_while_queued: bool = True  # the page says the list can be empty while queued
    retry_after: str | None = "1"  # the Retry-After header sent with injected 429s
    hang_seconds: float = 5.0  # how long the "hang" fault waits before answering
    submit_delay: float = 0.0  # hold every submit open this long after creating its task
    image_size: int | None = None  # pad PNGs to this many bytes (benchmarks)
    bandwidth: float | None = None  # bytes per second per image response (benchmarks)
    image_latency: float = 0.0  # seconds between an image's headers and its body
    small_images: bool = False  # 64x64 images instead of the real sizes (faster tests)
    fault_message: str | None = None  # the error message sent with injected error statuses
    submit_body: bytes | None = None  # if set, every valid submit is answered 200 with this
    poll_body: bytes | None = None  # if set, every poll is answered 200 with this
    image_url_base: str | None = None  # if set, result URLs point here instead of the image host
    image_format: str = "png"  # png at the real sizes, or a small sample: jpeg, avif, heic
    image_trailer: bytes = b""  # bytes after the image's end marker, as real files carry
    image_content_type: str | None = None  # send this Content-Type instead of the true one


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it."""

    server: str  # "api" or "images"
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class FakeTask:
    task_id: str
    body: dict[str, Any]
    created: float  # monotonic, for the job timeline
    outcomes: list[str]
    created_wall: float = field(default_factory=time.time)  # for benchmarks comparing mtimes

    def finishes_at(self, settings: FakeSettings) -> float:
        """Wall-clock time at which the last job turns terminal."""
        stagger = settings.job_stagger * (len(self.outcomes) - 1)
        return self.created_wall + settings.queue_seconds + settings.run_seconds + stagger


class FakeState:
    """Everything the handlers share, behind one lock."""

    def __init__(self, settings: FakeSettings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.tasks: dict[str, FakeTask] = {}
        self.requests: list[Recorded] = []
        self.submit_faults: deque[str] = deque()
        self.poll_faults: deque[str] = deque()
        self.image_faults: deque[str] = deque()
        # Called with the body of each valid submit before it is answered (tests check
        # what the client had already recorded at that moment).
        self.on_submit: Callable[[dict[str, Any]], None] | None = None
        self.image_base = ""
        self.image_spans: list[tuple[float, float]] = []  # (start, end) of whole image bodies

    def inject(self, where: str, *faults: str) -> None:
        """Queue faults for the next submits, polls or image requests (one fault each)."""
        known = {"submit": SUBMIT_FAULTS, "poll": POLL_FAULTS, "image": IMAGE_FAULTS}[where]
        unknown = [fault for fault in faults if fault not in known]
        if unknown:  # a misspelt fault would otherwise be ignored and a test pass for nothing
            raise ValueError(f"unknown {where} faults {unknown}; known: {', '.join(known)}")
        queue = {
            "submit": self.submit_faults,
            "poll": self.poll_faults,
            "image": self.image_faults,
        }[where]
        with self.lock:
            queue.extend(faults)

    def record(self, item: Recorded) -> None:
        with self.lock:
            self.requests.append(item)

    def next_fault(self, queue: deque[str]) -> str | None:
        with self.lock:
            return queue.popleft() if queue else None


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@lru_cache(maxsize=32)
def make_png(width: int, height: int, index: int = 1, pad_to: int | None = None) -> bytes:
    """A real RGB PNG of the given size: a colour gradient, one hue per image index."""
    hue = [(230, 90, 70), (70, 160, 230), (90, 200, 120), (220, 190, 60)][(index - 1) % 4]
    row = bytearray(b"\x00")  # filter type 0 for the row
    for x in range(width):
        shade = 0.4 + 0.6 * x / max(1, width - 1)
        row += bytes(int(c * shade) for c in hue)
    raw = bytes(row) * height
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw, 6))
    if pad_to is not None:
        # An ancillary private chunk pads the file to an exact size and stays a valid PNG.
        room = pad_to - (8 + len(body) + 12 + 12)
        if room > 0:
            body += png_chunk(b"soUl", _padding(room))
    return b"\x89PNG\r\n\x1a\n" + body + png_chunk(b"IEND", b"")


@lru_cache(maxsize=4)
def _padding(size: int) -> bytes:
    return secrets.token_bytes(size)


# Small real files for the formats a real image host may send (made once with Pillow).
_SAMPLE_JPEG = (
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAUDBAQEAwUEBAQFBQUGBwwIBwcHBw8LCwkMEQ8SEhEPERETFhwXExQa"
    "FRERGCEYGh0dHx8fExciJCIeJBweHx7/2wBDAQUFBQcGBw4ICA4eFBEUHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4e"
    "Hh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh7/wAARCAAQABADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
    "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
    "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
    "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
    "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
    "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
    "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
    "5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDxnQvCn3f3f6V3uheFPu/u/wBK7vQvCn3f3f6V3uheFPu/uv0r"
    "bNOJ99RcC8Y/D7x//9k="
)
_SAMPLE_AVIF = (
    "AAAAIGZ0eXBhdmlmAAAAAGF2aWZtaWYxbWlhZk1BMUIAAADrbWV0YQAAAAAAAAAhaGRscgAAAAAAAAAAcGljdAAA"
    "AAAAAAAAAAAAAAAAAAAOcGl0bQAAAAAAAQAAAB5pbG9jAAAAAEQAAAEAAQAAAAEAAAETAAAAKAAAAChpaW5mAAAA"
    "AAABAAAAGmluZmUCAAAAAAEAAGF2MDFDb2xvcgAAAABqaXBycAAAAEtpcGNvAAAAFGlzcGUAAAAAAAAAEAAAABAA"
    "AAAQcGl4aQAAAAADCAgIAAAADGF2MUOBAAwAAAAAE2NvbHJuY2x4AAEADQAGgAAAABdpcG1hAAAAAAAAAAEAAQQB"
    "AoMEAAAAMG1kYXQSAAoJGAz/2iAhoNCAMhkZR4eGIYeeeeaAAAB1hk3a5nlI+CevN50U"
)


def _heic_sample() -> bytes:
    """The AVIF sample under HEIC brands: soul reads only the brands and the box structure."""
    avif = base64.b64decode("".join(_SAMPLE_AVIF))
    return avif[:8] + b"heic\x00\x00\x00\x00mif1heicmiafMA1B" + avif[32:]


SAMPLES: dict[str, Callable[[], bytes]] = {
    "jpeg": lambda: base64.b64decode("".join(_SAMPLE_JPEG)),
    "avif": lambda: base64.b64decode("".join(_SAMPLE_AVIF)),
    "heic": _heic_sample,
}
CONTENT_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "avif": "image/avif",
    "heic": "image/heic",
}


def image_bytes(task: FakeTask, index: int, variant: str, settings: FakeSettings) -> bytes:
    """The file served for one job of a task: a PNG of its real size (a quarter for `min`).

    The picture shows what was asked (see `picture_png`), so results can be told apart.
    `image_size` pads the full image only, so a preview stays smaller, as real ones are.
    """
    if settings.image_format in SAMPLES:
        return SAMPLES[settings.image_format]() + settings.image_trailer
    if settings.small_images:
        width, height = 64, 64
    else:
        width, height = SIZES[task.body["aspect_ratio"]][QUALITY_NAMES[task.body["quality"]]]
        if variant == "min":
            width, height = max(1, width // 4), max(1, height // 4)
    pad_to = settings.image_size if variant == "raw" else None
    body = task.body
    picture = picture_png(
        width,
        height,
        str(body.get("prompt", "")),
        str(body.get("style_id", "")),
        int(body.get("seed", 0)),
        index,
        pad_to,
    )
    return picture + settings.image_trailer


def request_digest(prompt: str, style_id: str, seed: int) -> bytes:
    """The hash a fake picture is drawn from: equal requests, equal pictures."""
    import hashlib

    return hashlib.sha256(f"{prompt}\x00{style_id.lower()}\x00{seed}".encode()).digest()


@lru_cache(maxsize=32)
def picture_png(
    width: int,
    height: int,
    prompt: str,
    style_id: str,
    seed: int,
    index: int = 1,
    pad_to: int | None = None,
) -> bytes:
    """A PNG that shows which request and image it is, padded to `pad_to` bytes if given.

    A gradient whose two colours come from a hash of (prompt, style, seed), a few
    shapes placed by that hash and the image index, and the style's name with
    "#index". Cached: the servers ask for the same images repeatedly.
    """
    digest = request_digest(prompt, style_id, seed)
    label = f"{_style_name(style_id)} #{index}"
    data = _draw_picture(width, height, digest, index, label, gradient=True)
    if pad_to is None:
        return data
    if len(data) + 12 > pad_to:
        # Padding only adds: a flat background (a few KB) keeps small sizes exact.
        data = _draw_picture(width, height, digest, index, label, gradient=False)
    room = pad_to - len(data) - 12
    if room >= 0:
        # An ancillary private chunk before IEND pads the file to an exact size and
        # stays a valid PNG (readers skip chunks they do not know).
        data = data[:-12] + png_chunk(b"soUl", _padding(room)) + data[-12:]
    return data


def _draw_picture(
    width: int, height: int, digest: bytes, index: int, label: str, *, gradient: bool
) -> bytes:
    """Draw and encode one fake picture.

    Palette mode: at 2048x2048 Pillow encodes an RGB PNG in ~100 ms, a paletted one
    in ~20. The gradient runs top to bottom (bottom to top for even indexes): rows of
    one colour keep the file small (~30 KB), so `image_size` can pad most sizes; without
    the gradient, 4 bits a pixel make the smallest file (~16 KB at 2048x2048).
    """
    import colorsys
    import random

    from PIL import Image, ImageDraw

    # The palette: the gradient's levels (one colour without a gradient), the shapes'
    # three colours, then the label's white and black outline.
    levels = 240 if gradient else 1
    shapes, text, stroke = (levels, levels + 1, levels + 2), levels + 3, levels + 4
    hue = digest[0] / 255
    start = colorsys.hsv_to_rgb(hue, 0.55 + digest[1] / 640, 0.55 + digest[2] / 640)
    end = colorsys.hsv_to_rgb((hue + 0.3 + digest[3] / 850) % 1, 0.7, 0.35 + digest[4] / 850)
    palette: list[int] = []
    for slot in range(levels):
        share = slot / (levels - 1) if levels > 1 else 0.5
        palette += [round(255 * (a + (b - a) * share)) for a, b in zip(start, end, strict=True)]
    for shift in (0.5, 0.62, 0.83):  # shape colours: across the wheel from the gradient
        palette += [round(255 * c) for c in colorsys.hsv_to_rgb((hue + shift) % 1, 0.8, 0.95)]
    palette += [255, 255, 255, 0, 0, 0]
    if gradient:
        # Resizing a 1x2 image spreads its two values over the height: a gradient in ms.
        ends = Image.new("L", (1, 2))
        ends.putdata([0, levels - 1] if index % 2 else [levels - 1, 0])
        image = ends.resize((width, height), Image.Resampling.BILINEAR)
        image.putpalette(palette)  # the L values become palette slots: a "P" image
    else:
        image = Image.new("P", (width, height), 0)
        image.putpalette(palette)
    draw = ImageDraw.Draw(image)
    rng = random.Random(digest + bytes([index % 256]))
    side = min(width, height)
    for shape in range(3 + digest[5] % 3):
        radius = rng.uniform(0.06, 0.2) * side
        x, y = rng.uniform(0, width), rng.uniform(0, height * 0.8)
        box = (x - radius, y - radius, x + radius, y + radius)
        fill = shapes[shape % len(shapes)]
        if rng.random() < 0.5:
            draw.ellipse(box, fill=fill)
        else:
            draw.rectangle(box, fill=fill)
    _label(draw, label, width, height, text, stroke)
    if gradient:
        return _encode(image, "PNG", compress_level=6)
    # Six colours fit in 4 bits a pixel: half the bytes of 8, for the smallest file.
    return _encode(image, "PNG", compress_level=9, bits=4)


def _label(draw: Any, text: str, width: int, height: int, fill: int, outline: int) -> None:
    """Write `text` near the bottom left, as large as fits the width."""
    size = max(6, min(width, height) // 12)
    font = _font(size)
    while size > 6 and draw.textlength(text, font=font) > width * 0.9:
        size = max(6, int(size * 0.85))
        font = _font(size)
    margin = max(1, width // 24)
    stroke = max(1, size // 12)
    draw.text(
        (margin, height - margin - size * 1.2),
        text,
        font=font,
        fill=fill,
        stroke_width=stroke,
        stroke_fill=outline,
    )


@lru_cache(maxsize=64)
def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _encode(image: Any, kind: str, **options: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


@lru_cache(maxsize=1)
def _catalog() -> tuple[dict[str, str], dict[str, str]]:
    """Style names by lower-case id, and by the file name of their preview URL."""
    from soulcli.catalog import load_styles

    styles = load_styles()
    by_id = {style.id.lower(): style.name for style in styles}
    by_file = {
        style.preview_url.rsplit("/", 1)[-1]: style.name for style in styles if style.preview_url
    }
    return by_id, by_file


def _style_name(style_id: str) -> str:
    return _catalog()[0].get(style_id.lower(), style_id[:8] or "style")


PREVIEW_SIZE = (256, 342)  # a catalog preview's shape (3:4)


@lru_cache(maxsize=128)
def preview_image(file_name: str) -> bytes | None:
    """The file the fake's CDN serves as a style's preview, or None for an unknown one.

    A JPEG, or a WebP where the catalog's URL ends in .webp (13 of the 60 do), of a
    colour derived from the style's name, with the name written on it.
    """
    import colorsys
    import hashlib

    from PIL import Image, ImageDraw

    name = _catalog()[1].get(file_name)
    if name is None:
        return None
    digest = hashlib.sha256(name.encode()).digest()
    colour = colorsys.hsv_to_rgb(digest[0] / 255, 0.6, 0.45 + digest[1] / 700)
    width, height = PREVIEW_SIZE
    image = Image.new("RGB", PREVIEW_SIZE, tuple(round(255 * c) for c in colour))
    draw = ImageDraw.Draw(image)
    font = _font(28)
    lines = _wrap(draw, name, font, width - 24)
    top = (height - 34 * len(lines)) // 2
    for number, line in enumerate(lines):
        left = (width - draw.textlength(line, font=font)) / 2
        draw.text(
            (left, top + 34 * number),
            line,
            font=font,
            fill="white",
            stroke_width=2,
            stroke_fill="black",
        )
    if file_name.endswith(".webp"):
        return _encode(image, "WEBP", quality=80)
    return _encode(image, "JPEG", quality=85)


def _wrap(draw: Any, text: str, font: Any, width: float) -> list[str]:
    """`text` in lines no wider than `width` (a longer single word stays whole)."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines or [text]


def _validate(body: object) -> str | None:
    """Why a submit body is unacceptable, or None."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    required = {
        "quality": str,
        "aspect_ratio": str,
        "prompt": str,
        "enhance_prompt": bool,
        "seed": int,
        "style_id": str,
        "negative_prompt": str,
    }
    for name, kind in required.items():
        if name not in body:
            return f"{name} is required"
        value = body[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"{name} must be a {kind.__name__}"
    if body["quality"] not in QUALITY_NAMES:
        return "quality must be 720p or 1080p"
    if body["aspect_ratio"] not in SIZES:
        return "aspect_ratio must be one of " + ", ".join(SIZES)
    if not body["prompt"].strip():
        return "prompt must not be empty"
    if not 1 <= body["seed"] <= 1_000_000:
        return "seed must be between 1 and 1000000"
    if not UUID.match(body["style_id"]):
        return "style_id must be a style UUID"
    return None


def task_view(state: FakeState, task: FakeTask, now: float) -> dict[str, Any]:
    """The poll answer for a task at time `now`."""
    settings = state.settings
    elapsed = now - task.created
    queued_until = settings.queue_seconds
    running_until = queued_until + settings.run_seconds
    jobs: list[dict[str, Any]] = []
    if elapsed < queued_until:
        status = settings.queued_word
        if not settings.empty_jobs_while_queued:
            jobs = [
                _job(task, i, settings.queued_word, state) for i in range(1, len(task.outcomes) + 1)
            ]
    else:
        finished = 0
        for i, outcome in enumerate(task.outcomes, start=1):
            done_at = running_until + (i - 1) * settings.job_stagger
            if settings.never_finish or elapsed < done_at:
                jobs.append(_job(task, i, settings.running_word, state))
            else:
                jobs.append(_job(task, i, outcome, state))
                finished += 1
        status = "completed" if finished == len(task.outcomes) else settings.running_word
        if status == "completed" and not any(o == "completed" for o in task.outcomes):
            status = "failed"
    view: dict[str, Any] = {"id": task.task_id, "jobs": jobs}
    if settings.top_level_status:
        view["status"] = status
    return view


def _job(task: FakeTask, index: int, status: str, state: FakeState) -> dict[str, Any]:
    results = None
    if status == "completed":
        host = state.settings.image_url_base or state.image_base
        base = f"{host}/images/{task.task_id}/{index}"
        results = {
            "min": {"type": "image/png", "url": f"{base}/min.png"},
            "raw": {"type": "image/png", "url": f"{base}/raw.png"},
        }
    return {
        "id": f"{task.task_id}-job{index}",
        "status": status,
        "results": results,
        "board_ids": [],
        "created_at": int(task.created),
        "meta": {},
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake302/1"
    # The headers and the body go out in separate writes: with Nagle's algorithm the
    # body waited for the client's delayed ACK, 44 ms on every answer of a kept-alive
    # connection, which no real API host adds and which hid soul's own time.
    disable_nagle_algorithm = True
    state: FakeState
    role: str

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and demos read the recorded requests instead

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _record(self, body: bytes) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.state.record(Recorded(self.role, self.command, self.path, headers, body, time.time()))

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, status: int, payload: object, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), extra=extra)

    def _error(self, status: int, message: str, extra: dict[str, str] | None = None) -> None:
        self._json(status, {"error": {"message": message, "type": "fake302"}}, extra)

    def _drop(self) -> None:
        """Close the connection without answering (the request was read)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _common_fault(self, fault: str) -> bool:
        """Answer with an injected fault shared by both API endpoints; True if answered."""
        settings = self.state.settings
        if fault == "429":
            extra = (
                {"Retry-After": settings.retry_after} if settings.retry_after is not None else {}
            )
            self._error(429, "rate limited (injected)", extra)
        elif fault in ("500", "502", "503", "401", "402", "403", "404", "422"):
            self._error(int(fault), settings.fault_message or f"injected {fault}")
        elif fault == "html":
            self._send(200, b"<!DOCTYPE html><html><body>Bad gateway</body></html>", "text/html")
        elif fault == "drop":
            self._drop()
        else:
            return False
        return True


class _ApiHandler(_Handler):
    role = "api"

    def _authorized(self) -> bool:
        expected = f"Bearer {self.state.settings.api_key}"
        if self.headers.get("Authorization") != expected:
            self._error(401, "Invalid API key")
            return False
        return True

    def do_POST(self) -> None:
        body = self._read_body()
        self._record(body)
        if self.path != "/higgsfield/text2image_soul":
            self._error(404, "no such endpoint")
            return
        if not self._authorized():
            return
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            self._error(400, "body is not JSON")
            return
        problem = _validate(payload)
        if problem:
            self._error(422, problem)
            return
        fault = self.state.next_fault(self.state.submit_faults)
        if fault in ("429", "401", "402", "403", "422"):  # refused: no task is created
            self._common_fault(fault)
            return
        task = FakeTask(
            "higgsfield_" + secrets.token_hex(6),
            payload,
            time.monotonic(),
            list(self.state.settings.outcomes),
        )
        if self.state.on_submit is not None:
            self.state.on_submit(payload)
        with self.state.lock:
            self.state.tasks[task.task_id] = task
        if fault == "hang":
            time.sleep(self.state.settings.hang_seconds)
            fault = None
        elif self.state.settings.submit_delay:
            time.sleep(self.state.settings.submit_delay)
        if fault == "no_id":
            self._json(200, {"status": "queued", "result": None})
            return
        if self.state.settings.submit_body is not None:
            self._send(200, self.state.settings.submit_body)
            return
        if fault is not None and self._common_fault(fault):
            return
        shape = self.state.settings.response_shape
        if shape == "code":
            self._json(200, {"code": 200, "data": {"task_id": task.task_id}})
        elif shape == "task_id":
            self._json(200, {"task_id": task.task_id})
        else:
            self._json(
                200,
                {
                    "board_ids": [],
                    "id": task.task_id,
                    "result": None,
                    "results": None,
                    "status": "queued",
                },
            )

    def do_GET(self) -> None:
        self._record(b"")
        match = re.fullmatch(r"/higgsfield/task/([^/]+)/fetch", self.path)
        if match is None:
            self._error(404, "no such endpoint")
            return
        if not self._authorized():
            return
        fault = self.state.next_fault(self.state.poll_faults)
        if self.state.settings.poll_body is not None:
            self._send(200, self.state.settings.poll_body)
            return
        if fault == "truncated":
            self._send(200, b'{"id": "x", "status": "in_prog')
            return
        if fault is not None and self._common_fault(fault):
            return
        with self.state.lock:
            task = self.state.tasks.get(match.group(1))
        if task is None:
            self._error(404, "task not found")
            return
        view = task_view(self.state, task, time.monotonic())
        if fault == "shrink":  # a job list that is shorter than before
            view = {**view, "jobs": view["jobs"][:2]}
            if "status" in view:
                view["status"] = "in_progress"
        elif fault == "unknown_status":
            view = {**view, "jobs": [{**job, "status": "rendering"} for job in view["jobs"]]}
        elif fault == "regress":  # a task that looked done says it is running again
            view = {
                **view,
                "status": "in_progress",
                "jobs": [{**job, "status": "in_progress", "results": None} for job in view["jobs"]],
            }
        self._json(200, view)


class _ImageHandler(_Handler):
    role = "images"

    def do_GET(self) -> None:
        self._record(b"")
        settings = self.state.settings
        preview = re.fullmatch(r"/soul-style/([A-Za-z0-9_-]+\.(jpg|webp))", self.path)
        if preview is not None:
            # The CDN's style previews (SOUL_PREVIEW_BASE points soul here).
            picture = preview_image(preview.group(1))
            if picture is None:
                self._error(404, "no such preview")
                return
            self._serve(picture, "image/webp" if preview.group(2) == "webp" else "image/jpeg")
            return
        match = re.fullmatch(r"/images/([^/]+)/(\d)/(raw|min)\.png", self.path)
        with self.state.lock:
            task = self.state.tasks.get(match.group(1)) if match else None
        if match is None or task is None:
            self._error(404, "no such image")
            return
        data = image_bytes(task, int(match.group(2)), match.group(3), settings)
        content_type = settings.image_content_type or CONTENT_TYPES[settings.image_format]
        self._serve(data, content_type)

    def _serve(self, data: bytes, content_type: str) -> None:
        """Send an image, or the next injected image fault instead."""
        settings = self.state.settings
        fault = self.state.next_fault(self.state.image_faults)
        if fault == "html":
            self._send(200, b"<html><body>Access denied</body></html>", "text/html")
            return
        if fault in ("500", "404"):
            self._error(int(fault), "injected image fault")
            return
        if fault in ("redirect", "redirect_http"):
            # To the same image server under another host name, or to a plain-http host.
            port = self.connection.getsockname()[1]
            where = (
                f"http://localhost:{port}{self.path}"
                if fault == "redirect"
                else f"http://images.example.invalid{self.path}"
            )
            self.send_response(302)
            self.send_header("Location", where)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if fault in ("truncate", "cut"):
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            if fault == "truncate":
                self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self._drop()
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        started = time.time()
        if settings.image_latency:
            time.sleep(settings.image_latency)
        self._write_throttled(data, settings.bandwidth)
        with self.state.lock:
            self.state.image_spans.append((started, time.time()))

    def _write_throttled(self, data: bytes, bandwidth: float | None) -> None:
        if not bandwidth:
            self.wfile.write(data)
            return
        step = 64 * 1024
        started = time.monotonic()
        for offset in range(0, len(data), step):
            # Pace before each chunk, so the last byte leaves on time and nothing waits after it.
            ahead = offset / bandwidth - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
            self.wfile.write(data[offset : offset + step])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            return  # a client that went away (Ctrl-C, kill -9) is normal here
        print(f"fake302: {type(error).__name__}: {error}", file=sys.stderr)


class Fake302:
    """Both fake servers; use as a context manager or call start()/stop()."""

    def __init__(
        self, settings: FakeSettings | None = None, *, port: int = 0, image_port: int = 0
    ) -> None:
        self.state = FakeState(settings or FakeSettings())
        self._ports = (port, image_port)
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    @property
    def settings(self) -> FakeSettings:
        return self.state.settings

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def image_base(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def start(self) -> Fake302:
        for port, handler in zip(self._ports, (_ApiHandler, _ImageHandler), strict=True):
            bound = type(handler.__name__, (handler,), {"state": self.state})
            server = _Server(("127.0.0.1", port), bound)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                daemon=True,
                name=f"fake302-{handler.role}",
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        self.state.image_base = self.image_base
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> Fake302:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests(self, method: str | None = None, server: str = "api") -> list[Recorded]:
        with self.state.lock:
            return [
                r
                for r in self.state.requests
                if r.server == server and (method is None or r.method == method)
            ]

    def prepare_images(self, task_id: str) -> None:
        """Build a task's images now, so a benchmark times only their transfer."""
        with self.state.lock:
            task = self.state.tasks[task_id]
        for index in range(1, len(task.outcomes) + 1):
            image_bytes(task, index, "raw", self.settings)

    def post_count(self) -> int:
        return len(self.requests("POST"))

    def poll_count(self) -> int:
        return len(self.requests("GET"))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m soulcli.fake302",
        description="Run a fake 302.AI Soul API on 127.0.0.1 (no credits spent).",
    )
    parser.add_argument("--port", type=int, default=8302, help="API port (0 picks one)")
    parser.add_argument("--image-port", type=int, default=8303, help="image host port")
    parser.add_argument("--key", default=DEFAULT_KEY, help="the API key it accepts")
    parser.add_argument("--queue-seconds", type=float, default=1.0)
    parser.add_argument("--run-seconds", type=float, default=3.0)
    parser.add_argument(
        "--outcomes",
        default="completed,completed,completed,completed",
        help="comma-separated job outcomes, e.g. completed,completed,completed,nsfw",
    )
    parser.add_argument(
        "--shape",
        choices=("id", "code", "task_id"),
        default="id",
        help="which documented submit answer to send",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    settings = FakeSettings(
        api_key=args.key,
        queue_seconds=args.queue_seconds,
        run_seconds=args.run_seconds,
        outcomes=[o.strip() for o in args.outcomes.split(",") if o.strip()],
        response_shape=args.shape,
    )
    fake = Fake302(settings, port=args.port, image_port=args.image_port).start()
    print(f"fake 302.AI on {fake.base_url} (images on {fake.image_base}); Ctrl-C stops it")
    print(f"export SOUL_BASE_URL={fake.base_url}")
    print(f"export SOUL_API_KEY={settings.api_key}")
    # Style previews from the fake too: `soul styles --show` works offline.
    print(f"export SOUL_PREVIEW_BASE={fake.image_base}/soul-style", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
