"""Download result images concurrently, streamed to temp files and renamed into place whole."""

from __future__ import annotations

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
from soulcli.imagefiles import (
    HEAD_BYTES,
    SNIFFED_TYPES,
    UNSNIFFED_TYPES,
    NotWhole,
    check_whole,
    looks_like_text,
    same_content,
    sniff_extension,
)
from soulcli.models import Job
from soulcli.outdir import prepare_out_dir
from soulcli.process import pid_alive
from soulcli.text import one_line
from soulcli.tls import tls_context
from soulcli.transport import direct_transport

MAX_IMAGE_BYTES = 50 * 1024 * 1024  # the largest Soul image is a few MB; more is not an image
CHUNK = 64 * 1024
ATTEMPTS_PER_URL = 3
PART_SUFFIX = ".part"
# One pool of download threads per downloader (a batch shares one): a task's 4 images
# still download at once, and a big batch does not start 4 threads for every task,
# which the GIL and the connection pool (32 connections) would only make wait.
DOWNLOAD_THREADS = 16


class Cancelled(Exception):
    """Downloads were stopped because the user interrupted."""


class BadImage(Exception):
    """What the image host sent is not a whole image: worth trying the preview instead."""


class LocalWriteError(Exception):
    """The image could not be stored here (disk full, read-only, no permission).

    Never a reason to fall back to the preview: the full image is fine, the disk is not.
    """


@dataclass(frozen=True)
class SavedImage:
    index: int
    url: str
    path: Path
    note: str | None = None  # e.g. "already saved" when an identical file was there
    variant: str = "raw"  # "min" when the smaller preview was saved instead
    fallback_reason: str = ""  # why the full image was not saved, for a preview


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


class ImageDownloader:
    """Fetches image URLs without any credentials; the API key is never given to it.

    One downloader serves a whole run (a batch shares one between its tasks): one
    connection pool, one pool of download threads, and one listing of each output
    directory's temp files.
    """

    def __init__(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        max_bytes: int = MAX_IMAGE_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        threads: int = DOWNLOAD_THREADS,
    ) -> None:
        self._max_bytes = max_bytes
        self._sleep = sleep
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._parts = PartFiles()
        self._http = httpx.Client(
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=60.0),
            follow_redirects=True,
            max_redirects=5,
            transport=transport or direct_transport(max_connections=32),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            event_hooks={"request": [self._check_hop]},
            verify=tls_context(),  # the process's one context: the CA bundle is read once
        )

    @staticmethod
    def _check_hop(request: httpx.Request) -> None:
        # Runs for redirects too, so a redirect cannot lead to plain http elsewhere.
        check_image_url(str(request.url))
        request.headers.pop("Authorization", None)

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self._http.close()

    def _download_pool(self) -> ThreadPoolExecutor:
        """The downloader's threads, started on the first image."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._threads, thread_name_prefix="soul-dl"
                )
            return self._pool

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
        previews: dict[int, Path] | None = None,
    ) -> tuple[list[SavedImage], list[MissingImage]]:
        """Save every completed job's image into out_dir concurrently; report the rest.

        Files are named STEM_N.ext, STEM being `stem` or else the task id (made safe).
        `previews` maps an image index to a preview saved earlier, which the full
        image replaces.
        """
        previews = previews or {}
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
            self._parts.remove_stale(out_dir, stem or task_id, job.index)
        cancel = threading.Event()
        lock = threading.Lock()

        def one(job: Job) -> None:
            try:
                preview = previews.get(job.index)
                image = self._save_job(stem or task_id, job, out_dir, cancel, preview)
            except Cancelled:
                raise
            except Exception as exc:  # one image's trouble must not lose the others
                known = isinstance(exc, BadImage | LocalWriteError)
                reason = str(exc) if known else f"{type(exc).__name__}: {exc}"
                with lock:
                    missing.append(MissingImage(job.index, "download failed", one_line(reason)))
                return
            with lock:
                saved.append(image)
            if on_saved is not None:
                on_saved(image)

        if wanted:
            pool = self._download_pool()
            futures: list[Future[None]] = []
            try:
                # Submitted inside the try: a Ctrl-C between two submits cancels both.
                for job in wanted:
                    futures.append(pool.submit(one, job))
                pending = set(futures)
                while pending:
                    # A short timeout keeps the main thread responsive to Ctrl-C.
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                    for future in done:
                        future.result()
            except BaseException:
                # Only this task's downloads stop (the pool serves other tasks too):
                # the queued ones are dropped, the running ones see `cancel` at their
                # next chunk, and none is left writing once this returns.
                cancel.set()
                for future in futures:
                    future.cancel()
                wait(futures)
                raise
        saved.sort(key=lambda image: image.index)
        missing.sort(key=lambda image: image.index)
        return saved, missing

    def _save_job(
        self,
        stem: str,
        job: Job,
        out_dir: Path,
        cancel: threading.Event,
        preview: Path | None,
    ) -> SavedImage:
        """The full image, or the `min` preview when the image host cannot give it whole.

        A local write error (disk full, read-only) is raised at once: the preview would
        hide it, and `soul fetch` can get the full image once there is room.
        """
        problem = "the job has no image URL"
        for variant, url in (("raw", job.raw_url), ("min", job.min_url)):
            if not url or (variant == "min" and url == job.raw_url):
                continue
            for attempt in range(ATTEMPTS_PER_URL):
                try:
                    path, note = self._download(stem, job.index, url, out_dir, cancel, preview)
                except _Transient as exc:
                    problem = str(exc)
                    if attempt < ATTEMPTS_PER_URL - 1:
                        self._sleep(backoff_delay(attempt))
                    continue
                except BadImage as exc:
                    problem = str(exc)
                    break
                if variant == "raw" and preview is not None and path != preview:
                    preview.unlink(missing_ok=True)  # the full image replaces an earlier preview
                fallback = problem if variant == "min" else ""
                return SavedImage(job.index, url, path, note, variant, fallback)
        raise BadImage(problem)

    def _download(
        self,
        stem: str,
        index: int,
        url: str,
        out_dir: Path,
        cancel: threading.Event,
        replaceable: Path | None,
    ) -> tuple[Path, str | None]:
        check_image_url(url)
        # The pid in the name lets a later run remove what a killed one left behind.
        part = (
            out_dir
            / f"{_part_prefix(stem, index)}{os.getpid()}.{secrets.token_hex(4)}{PART_SUFFIX}"
        )
        try:
            fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise LocalWriteError(f"cannot write in {out_dir}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "w+b") as handle:
                head, size, content_type = self._stream_into(url, handle, cancel)
                try:
                    handle.flush()
                    os.fsync(handle.fileno())
                except OSError as exc:
                    raise LocalWriteError(f"cannot write the image: {exc.strerror}") from exc
                extension = _extension(head, size, content_type)
                try:
                    check_whole(extension, handle, size)
                except NotWhole as exc:
                    raise BadImage(str(exc)) from exc
            return _place(part, out_dir, image_name(stem, index, extension), replaceable)
        finally:
            part.unlink(missing_ok=True)

    def _stream_into(
        self, url: str, handle: BinaryIO, cancel: threading.Event
    ) -> tuple[bytes, int, str]:
        write = handle.write
        head = b""
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
                    if len(head) < HEAD_BYTES:
                        head = (head + chunk)[:HEAD_BYTES]
                    try:
                        write(chunk)
                    except OSError as exc:
                        raise LocalWriteError(f"cannot write the image: {exc.strerror}") from exc
        except httpx.TooManyRedirects as exc:
            raise BadImage("too many redirects") from exc
        except httpx.InvalidURL as exc:
            raise BadImage(f"not a usable URL: {one_line(url, 80)}") from exc
        except httpx.HTTPError as exc:
            raise _Transient(f"download failed ({type(exc).__name__})") from exc
        if expected is not None and size != expected:
            raise _Transient(f"the download was cut short ({size} of {expected} bytes)")
        return head, size, content_type


class _Transient(Exception):
    """A download failure worth another try."""


def _extension(head: bytes, size: int, content_type: str) -> str:
    """The file's extension from its bytes; the server's Content-Type only for unknown formats."""
    extension = sniff_extension(head)
    if extension is not None:
        return extension
    if content_type in SNIFFED_TYPES:
        raise BadImage(f"the server sent something that is not an image (it said {content_type})")
    # A format soul cannot recognise is kept if the server calls it an image and it
    # does not look like a page or an error body.
    extension = UNSNIFFED_TYPES.get(content_type)
    if extension is None or size == 0 or looks_like_text(head):
        raise BadImage("the server sent something that is not an image")
    return extension


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


class PartFiles:
    """The temp files in each output directory, listed once with one os.scandir.

    Before saving an image, soul deletes the temp files of that image that a killed
    soul process left (`.STEM_N.PID.*.part`, that pid no longer running). A listing
    of the directory for every image made a big batch into one folder O(n^2) (45 ms
    per image with 80,000 files there), so each directory is listed on its first
    image only, and a name deleted here leaves the list. This process's own temp
    files need not be in it: their pid runs, so they are never stale. What a process
    killed after the listing leaves, the next run removes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Output directory -> part-file prefix (`.STEM_N.`) -> file names.
        self._listed: dict[Path, dict[str, set[str]]] = {}

    def remove_stale(self, out_dir: Path, stem: str, index: int) -> None:
        """Delete this image's temp files left by a soul process that no longer runs."""
        prefix = _part_prefix(stem, index)
        with self._lock:
            listed = self._listed.get(out_dir)
            if listed is None:
                listed = self._listed[out_dir] = _list_parts(out_dir)
            names = listed.get(prefix, set())
            stale = {name for name in names if _owner_is_gone(name, prefix)}
            names -= stale
        for name in stale:
            (out_dir / name).unlink(missing_ok=True)


def _list_parts(out_dir: Path) -> dict[str, set[str]]:
    """The temp files in `out_dir` by image prefix (`.STEM_N.`), from one directory scan."""
    found: dict[str, set[str]] = {}
    try:
        with os.scandir(out_dir) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") and name.endswith(PART_SUFFIX):
                    prefix = name[: name.find(".", 1) + 1]
                    found.setdefault(prefix, set()).add(name)
    except OSError:
        pass  # an unreadable directory: the write that follows says what is wrong
    return found


def _owner_is_gone(name: str, prefix: str) -> bool:
    """Whether the pid in a temp file's name (`PREFIX` PID `.`...) is no running process."""
    pid_text = name[len(prefix) :].split(".", 1)[0]
    return pid_text.isdigit() and not pid_alive(int(pid_text))


def _same_content(a: Path, b: Path) -> bool:
    """Whether two files hold the same bytes, streamed (images can be tens of MB)."""
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        with a.open("rb") as left, b.open("rb") as right:
            return same_content(left, right)
    except OSError:
        return False


def _place(
    part: Path, out_dir: Path, name: str, replaceable: Path | None = None
) -> tuple[Path, str | None]:
    """Move a finished temp file to `name`, never overwriting a different existing file.

    The one exception is `replaceable`, a preview of this same image saved earlier.
    """
    stem, dot, extension = name.rpartition(".")
    for attempt in range(100):
        candidate = out_dir / (name if attempt == 0 else f"{stem}-{attempt + 1}{dot}{extension}")
        if candidate.resolve().parent != out_dir:
            raise BadImage("refusing a file name outside the output directory")
        if candidate.exists() and _same_content(candidate, part):
            return candidate, "already saved"
        try:
            if candidate == replaceable:
                os.replace(part, candidate)
            else:
                _link_exclusive(part, candidate)
        except FileExistsError:
            continue
        except OSError as exc:
            raise LocalWriteError(f"cannot save {candidate.name}: {exc.strerror}") from exc
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
