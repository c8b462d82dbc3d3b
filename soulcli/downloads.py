"""Download result images concurrently, streamed to temp files and renamed into place whole."""

from __future__ import annotations

import glob
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import httpx

from soulcli.client import USER_AGENT, backoff_delay
from soulcli.config import is_loopback
from soulcli.errors import DownloadError
from soulcli.models import Job
from soulcli.process import pid_alive
from soulcli.text import one_line

MAX_IMAGE_BYTES = 50 * 1024 * 1024  # the largest Soul image is a few MB; more is not an image
CHUNK = 64 * 1024
ATTEMPTS_PER_URL = 3
PART_SUFFIX = ".part"


class Cancelled(Exception):
    """Downloads were stopped because the user interrupted."""


class BadImage(Exception):
    """A download finished but what arrived is not a whole image (or could not be stored)."""


@dataclass(frozen=True)
class SavedImage:
    index: int
    url: str
    path: Path
    note: str | None = None  # e.g. "already saved" when an identical file was there


@dataclass(frozen=True)
class MissingImage:
    index: int
    status: str  # the job status (nsfw, failed...) or "download failed"
    reason: str = ""


def safe_stem(task_id: str) -> str:
    """A file-name stem from a task id: only [A-Za-z0-9_-], never empty, never a path."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", task_id).strip("_")[:80]
    return stem or "task"


def image_name(stem: str, index: int, extension: str) -> str:
    """STEM_N.ext, STEM being a task id or a batch line's `name`, made safe."""
    return f"{safe_stem(stem)}_{index}{extension}"


def check_image_url(url: str) -> None:
    """Refuse anything but https (plain http only for loopback hosts)."""
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise BadImage(f"not a usable URL (spaces or control characters): {one_line(url, 80)}")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError as exc:
        raise BadImage(f"not a usable URL: {one_line(url, 80)}") from exc
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and host and is_loopback(host):
        return
    raise BadImage(f"refusing a non-https image URL: {one_line(url, 80)}")


def sniff_extension(head: bytes) -> str | None:
    """The file extension for known image magic bytes, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return ".webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return ".gif"
    return None


IMAGE_TYPES = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/avif": ".avif",
    "image/heic": ".heic",
}


def looks_like_text(head: bytes) -> bool:
    """Whether a body starts like an HTML page, JSON or other text rather than image bytes."""
    start = head.lstrip()[:1]
    return start in (b"<", b"{", b"[") or head.startswith(b"\xef\xbb\xbf")


def check_complete(extension: str, head: bytes, tail: bytes, size: int) -> None:
    """Raise BadImage when the format's own end marker shows the body was cut short."""
    if extension == ".png" and not tail.endswith(b"IEND\xaeB`\x82"):
        raise BadImage("the PNG ends before its IEND chunk (cut short)")
    if extension == ".jpg" and not tail.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise BadImage("the JPEG has no end marker (cut short)")
    if extension == ".webp" and int.from_bytes(head[4:8], "little") + 8 > size:
        raise BadImage("the WebP is shorter than its header says (cut short)")
    if extension == ".gif" and not tail.endswith(b";"):
        raise BadImage("the GIF has no trailer (cut short)")


class ImageDownloader:
    """Fetches image URLs without any credentials; the API key is never given to it."""

    def __init__(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        max_bytes: int = MAX_IMAGE_BYTES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._max_bytes = max_bytes
        self._sleep = sleep
        self._http = httpx.Client(
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=60.0),
            follow_redirects=True,
            max_redirects=5,
            transport=transport,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            event_hooks={"request": [self._check_hop]},
        )

    @staticmethod
    def _check_hop(request: httpx.Request) -> None:
        # Runs for redirects too, so a redirect cannot lead to plain http elsewhere.
        check_image_url(str(request.url))
        request.headers.pop("Authorization", None)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ImageDownloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save_all(
        self,
        task_id: str,
        jobs: Iterable[Job],
        out_dir: Path,
        *,
        on_saved: Callable[[SavedImage], None] | None = None,
        stem: str | None = None,
    ) -> tuple[list[SavedImage], list[MissingImage]]:
        """Save every completed job's image into out_dir concurrently; report the rest.

        Files are named STEM_N.ext, STEM being `stem` or else the task id (made safe).
        """
        out_dir = prepare_out_dir(out_dir)
        saved: list[SavedImage] = []
        missing: list[MissingImage] = []
        wanted: list[Job] = []
        for job in jobs:
            if job.status != "completed":
                missing.append(MissingImage(job.index, job.status))
            elif not job.url:
                missing.append(MissingImage(job.index, "no image", "the job has no image URL"))
            else:
                wanted.append(job)
        for job in wanted:
            remove_stale_parts(out_dir, stem or task_id, job.index)
        cancel = threading.Event()
        lock = threading.Lock()

        def one(job: Job) -> None:
            try:
                image = self._save_job(stem or task_id, job, out_dir, cancel)
            except Cancelled:
                raise
            except Exception as exc:  # one image's trouble must not lose the others
                reason = str(exc) if isinstance(exc, BadImage) else f"{type(exc).__name__}: {exc}"
                with lock:
                    missing.append(MissingImage(job.index, "download failed", one_line(reason)))
                return
            with lock:
                saved.append(image)
            if on_saved is not None:
                on_saved(image)

        if wanted:
            pool = ThreadPoolExecutor(max_workers=min(4, len(wanted)), thread_name_prefix="soul-dl")
            futures: list[Future[None]] = [pool.submit(one, job) for job in wanted]
            try:
                pending = set(futures)
                while pending:
                    # A short timeout keeps the main thread responsive to Ctrl-C.
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                    for future in done:
                        future.result()
            except BaseException:
                cancel.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
        saved.sort(key=lambda image: image.index)
        missing.sort(key=lambda image: image.index)
        return saved, missing

    def _save_job(self, stem: str, job: Job, out_dir: Path, cancel: threading.Event) -> SavedImage:
        urls = [u for u in (job.raw_url, job.min_url) if u]
        problem = "no URL"
        for url in dict.fromkeys(urls):  # raw first, then min; once each
            for attempt in range(ATTEMPTS_PER_URL):
                try:
                    path, note = self._download(stem, job.index, url, out_dir, cancel)
                    return SavedImage(job.index, url, path, note)
                except _Transient as exc:
                    problem = str(exc)
                    if attempt < ATTEMPTS_PER_URL - 1:
                        self._sleep(backoff_delay(attempt))
                except BadImage as exc:
                    problem = str(exc)
                    break
        raise BadImage(problem)

    def _download(
        self, stem: str, index: int, url: str, out_dir: Path, cancel: threading.Event
    ) -> tuple[Path, str | None]:
        check_image_url(url)
        # The pid in the name lets a later run remove what a killed one left behind.
        part = (
            out_dir
            / f"{_part_prefix(stem, index)}{os.getpid()}.{secrets.token_hex(4)}{PART_SUFFIX}"
        )
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise BadImage(f"cannot write in {out_dir}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                head, tail, size, content_type = self._stream_into(url, handle, cancel)
                handle.flush()
                os.fsync(handle.fileno())
            extension = sniff_extension(head)
            if extension is not None:
                check_complete(extension, head, tail, size)
            else:
                # An image format soul does not know is kept if the server calls it an image
                # and it does not look like a page or an error body.
                extension = IMAGE_TYPES.get(content_type)
                if extension is None or size == 0 or looks_like_text(head):
                    raise BadImage("the server sent something that is not an image")
            return _place(part, out_dir, image_name(stem, index, extension))
        finally:
            part.unlink(missing_ok=True)

    def _stream_into(
        self, url: str, handle: BinaryIO, cancel: threading.Event
    ) -> tuple[bytes, bytes, int, str]:
        write = handle.write
        head = b""
        tail = b""
        size = 0
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code >= 500 or response.status_code == 429:
                    raise _Transient(f"image host answered {response.status_code}")
                if response.status_code != 200:
                    raise BadImage(f"image host answered {response.status_code}")
                expected = _content_length(response)
                content_type = (
                    response.headers.get("Content-Type", "").split(";")[0].strip().lower()
                )
                if expected is not None and expected > self._max_bytes:
                    raise BadImage(f"the image is too large ({expected} bytes)")
                for chunk in response.iter_bytes(CHUNK):
                    if cancel.is_set():
                        raise Cancelled()
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise BadImage(f"the image is larger than {self._max_bytes} bytes")
                    if len(head) < 16:
                        head = (head + chunk)[:16]
                    tail = (tail + chunk)[-16:]
                    try:
                        write(chunk)
                    except OSError as exc:
                        raise BadImage(f"cannot write the image: {exc.strerror}") from exc
        except httpx.TooManyRedirects as exc:
            raise BadImage("too many redirects") from exc
        except httpx.InvalidURL as exc:
            raise BadImage(f"not a usable URL: {one_line(url, 80)}") from exc
        except httpx.HTTPError as exc:
            raise _Transient(f"download failed ({type(exc).__name__})") from exc
        if expected is not None and size != expected:
            raise _Transient(f"the download was cut short ({size} of {expected} bytes)")
        return head, tail, size, content_type


class _Transient(Exception):
    """A download failure worth another try."""


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or response.headers.get("Content-Encoding"):
        return None  # a compressed body's length is not the image's length
    try:
        return int(value)
    except ValueError:
        return None


def _part_prefix(stem: str, index: int) -> str:
    return f".{safe_stem(stem)}_{index}."


def remove_stale_parts(out_dir: Path, stem: str, index: int) -> None:
    """Delete temp files of this image left by a soul process that no longer runs (kill -9)."""
    prefix = _part_prefix(stem, index)
    for part in out_dir.glob(f"{glob.escape(prefix)}*{PART_SUFFIX}"):
        pid_text = part.name[len(prefix) :].split(".", 1)[0]
        if pid_text.isdigit() and not pid_alive(int(pid_text)):
            part.unlink(missing_ok=True)


def prepare_out_dir(out_dir: Path) -> Path:
    """Create the output directory if needed and check that it can be written to."""
    out_dir = out_dir.expanduser()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create output directory {out_dir}: {exc.strerror}") from exc
    if not out_dir.is_dir():
        raise DownloadError(f"output path {out_dir} is not a directory")
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise DownloadError(f"output directory {out_dir} is not writable")
    return out_dir.resolve()


def _same_content(a: Path, b: Path) -> bool:
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _place(part: Path, out_dir: Path, name: str) -> tuple[Path, str | None]:
    """Move a finished temp file to `name`, never overwriting a different existing file."""
    stem, dot, extension = name.rpartition(".")
    for attempt in range(100):
        candidate = out_dir / (name if attempt == 0 else f"{stem}-{attempt + 1}{dot}{extension}")
        if candidate.resolve().parent != out_dir:
            raise BadImage("refusing a file name outside the output directory")
        if candidate.exists() and _same_content(candidate, part):
            return candidate, "already saved"
        try:
            _link_exclusive(part, candidate)
        except FileExistsError:
            continue
        except OSError as exc:
            raise BadImage(f"cannot save {candidate.name}: {exc.strerror}") from exc
        note = None if attempt == 0 else f"{name} already exists with other content"
        return candidate, note
    raise BadImage(f"too many files named like {name}")


def _link_exclusive(source: Path, target: Path) -> None:
    """Give `source` the name `target` unless `target` exists (then FileExistsError)."""
    import errno

    try:
        # link() fails if the name exists, so a file that appeared meanwhile is kept.
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # A file system without hard links: check, then rename (a small race, no data loss).
        if target.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from exc
        os.rename(source, target)
