"""Style preview images, fetched once from the catalog's CDN and kept in the user cache."""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from soulcli.paths import cache_dir

if TYPE_CHECKING:
    import httpx

    from soulcli.catalog import Style

MAX_PREVIEW_BYTES = 5 * 1024 * 1024  # a catalog preview is tens of KB; more is not one
WORKERS = 8
PART_SUFFIX = ".part"
PREVIEW_TYPES = {".jpg", ".png", ".webp", ".gif"}  # what a preview may be (Pillow reads them)
_CHUNK = 64 * 1024
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")


def preview_url(style: Style) -> str:
    """Where a style's preview is fetched: its catalog URL, or the same file under
    $SOUL_PREVIEW_BASE when that is set (tests and the offline demo point it at the fake)."""
    url = style.preview_url
    base = os.environ.get("SOUL_PREVIEW_BASE", "").strip()
    if not url or not base:
        return url
    return f"{base.rstrip('/')}/{url.rsplit('/', 1)[-1]}"


def previews_dir() -> Path:
    """The preview cache: `previews/` in the cache dir.

    Previews from a $SOUL_PREVIEW_BASE host are kept in a folder of their own, named
    by a hash of the base, so a demo's stand-in pictures never pass for the real ones.
    """
    directory = cache_dir() / "previews"
    base = os.environ.get("SOUL_PREVIEW_BASE", "").strip().rstrip("/")
    if base:
        import hashlib

        return directory / f"base-{hashlib.sha256(base.encode()).hexdigest()[:12]}"
    return directory


def preview_file_name(url: str) -> str:
    """The cache file name for a preview URL: its last path segment when that is a
    plain file name (the CDN's are UUIDs), else a hash of the URL."""
    from urllib.parse import urlsplit

    try:
        name = urlsplit(url).path.rsplit("/", 1)[-1]
    except ValueError:
        name = ""
    if _SAFE_NAME.match(name) and not name.endswith(PART_SUFFIX):
        return name
    import hashlib

    return hashlib.sha256(url.encode()).hexdigest()[:32] + ".img"


def cached_previews(styles: list[Style], *, timeout: float = 10.0) -> dict[str, Path | None]:
    """Each style's preview image in the cache, by style id; None where there is none.

    Cached previews are used as they are, with no network. The others are fetched
    concurrently, without any credentials, and stored whole or not at all; one that
    cannot be fetched (offline, refused, not an image, over `timeout` seconds) is None
    and is tried again next time. Never raises for a download: the caller draws a
    placeholder instead.
    """
    directory = previews_dir()
    found: dict[str, Path | None] = {}
    wanted: dict[Path, str] = {}  # cache path -> URL; styles sharing a preview share a download
    for style in styles:
        url = preview_url(style)
        if not url:
            found[style.id] = None
            continue
        path = directory / preview_file_name(url)
        if _is_cached(path):
            found[style.id] = path
        else:
            found[style.id] = None
            wanted[path] = url
    if not wanted:
        return found
    fetched = _fetch_all(wanted, directory, timeout)
    for style in styles:
        url = preview_url(style)
        if url and found[style.id] is None:
            found[style.id] = fetched.get(directory / preview_file_name(url))
    return found


def _is_cached(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def _fetch_all(wanted: dict[Path, str], directory: Path, timeout: float) -> dict[Path, Path]:
    """Download the wanted previews at most WORKERS at a time; the paths that arrived."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from soulcli.client import USER_AGENT
    from soulcli.downloads import check_image_url
    from soulcli.tls import tls_context
    from soulcli.transport import direct_transport

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return {}  # an unwritable cache: every preview is a placeholder, nothing fails
    _remove_stale_parts(directory)

    def check_hop(request: httpx.Request) -> None:
        # Runs for redirects too: https only (http for loopback), and never a credential.
        check_image_url(str(request.url))
        request.headers.pop("Authorization", None)

    deadline = time.monotonic() + timeout
    cancel = threading.Event()
    arrived: dict[Path, Path] = {}
    lock = threading.Lock()
    # A client of its own: the API client carries the key, this one has nothing to carry.
    with httpx.Client(
        headers={"User-Agent": USER_AGENT},
        timeout=httpx.Timeout(timeout),
        follow_redirects=True,
        max_redirects=5,
        transport=direct_transport(max_connections=WORKERS),
        limits=httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS),
        event_hooks={"request": [check_hop]},
        verify=tls_context(),
    ) as client:

        def one(path: Path, url: str) -> None:
            try:
                if _download(client, url, path, deadline, cancel):
                    with lock:
                        arrived[path] = path
            except Exception:
                pass  # a preview is decoration: whatever went wrong, the caller draws a placeholder

        pool = ThreadPoolExecutor(
            max_workers=min(WORKERS, len(wanted)), thread_name_prefix="soul-pv"
        )
        try:
            for path, url in wanted.items():
                pool.submit(one, path, url)
            pool.shutdown(wait=True)
        except BaseException:  # Ctrl-C: stop the downloads in flight, leave no temp file
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return arrived


def _download(
    client: httpx.Client, url: str, path: Path, deadline: float, cancel: threading.Event
) -> bool:
    """Fetch one preview into `path` through a temp file; False if it did not arrive whole."""
    import httpx

    from soulcli.downloads import BadImage, check_image_url
    from soulcli.imagefiles import HEAD_BYTES, NotWhole, check_whole, sniff_extension

    try:
        check_image_url(url)
    except BadImage:
        return False
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    part = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{PART_SUFFIX}")
    try:
        fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w+b") as handle:
            head = b""
            size = 0
            with client.stream("GET", url, timeout=remaining) as response:
                if response.status_code != 200:
                    return False
                declared = response.headers.get("Content-Length")
                if declared is not None and not declared.isdigit():
                    declared = None
                if declared is not None and int(declared) > MAX_PREVIEW_BYTES:
                    return False
                for chunk in response.iter_bytes(_CHUNK):
                    size += len(chunk)
                    if size > MAX_PREVIEW_BYTES or cancel.is_set():
                        return False
                    if time.monotonic() > deadline:
                        return False  # a trickle that would outlast the caller's patience
                    if len(head) < HEAD_BYTES:
                        head = (head + chunk)[:HEAD_BYTES]
                    handle.write(chunk)
                encoded = response.headers.get("Content-Encoding")
                if declared is not None and not encoded and size != int(declared):
                    return False  # cut short
            extension = sniff_extension(head)
            if extension not in PREVIEW_TYPES:
                return False  # an error page, or a format the previews are never in
            check_whole(extension, handle, size)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(part, path)  # whole or not at all, even for another soul reading now
        return True
    except (httpx.HTTPError, BadImage, NotWhole, OSError):
        return False
    finally:
        part.unlink(missing_ok=True)


def _remove_stale_parts(directory: Path) -> None:
    """Delete temp files left by a soul process that no longer runs (killed mid-download)."""
    from soulcli.process import pid_alive

    try:
        parts = list(directory.glob(f".*{PART_SUFFIX}"))
    except OSError:
        return
    for part in parts:
        pid_text = part.name.rsplit(".", 3)[-3] if part.name.count(".") >= 3 else ""
        if pid_text.isdigit() and not pid_alive(int(pid_text)):
            part.unlink(missing_ok=True)
