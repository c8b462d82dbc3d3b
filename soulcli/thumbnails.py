"""Gallery thumbnails: made once per image content with Pillow, reused on every rebuild."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soulcli.atomicfile import write_atomically
from soulcli.sheet import NOT_ON_DISK
from soulcli.text import one_line

BOX = (320, 320)  # sharp at 160 CSS pixels on a 2x screen; 10 to 20 KB each
MANIFEST = "manifest.json"
# Bump when thumbnails are made differently: older ones are then made again.
VERSION = 2
# Soul's images are at most 4 megapixels. Far larger ones cost hundreds of MB to
# decode (and make Pillow warn on stderr): they get no thumbnail, just a link.
MAX_PIXELS = 64_000_000
# What a thumbnail's file name looks like (this and older versions): anything else in
# the folder is not soul's, and is never deleted.
THUMB_NAME = re.compile(r"[0-9a-f]{32}\.(?:jpg|webp)")


@dataclass(frozen=True)
class Thumb:
    """A thumbnail in the thumbnail folder: its file name and size in pixels."""

    name: str
    width: int
    height: int


@dataclass
class _Known:
    """What the manifest remembers of one image file: its size, mtime and content key."""

    size: int
    mtime_ns: int
    key: str


class ThumbnailCache:
    """Thumbnails in one folder, named by a hash of the image's content.

    A manifest remembers which file (path, size, mtime) had which content hash, and
    which contents could not be read, so a rebuild reads only images it has not seen;
    two copies of one image share a thumbnail, and a file edited in place gets a new
    one. Without the manifest (a killed first build), thumbnails already on disk are
    found again by hashing, without decoding.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.made = 0
        self._files: dict[str, _Known] = {}
        self._sizes: dict[str, tuple[int, int]] = {}
        self._failed: dict[str, str] = {}  # content key: why it has no thumbnail
        self._on_disk: set[str] = set()
        self._guard = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads((self.folder / MANIFEST).read_text("utf-8"))
        except (OSError, ValueError):
            return  # no manifest, or a damaged one: thumbnails are found or made again
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return
        try:
            for path, (size, mtime_ns, key) in data["files"].items():
                self._files[path] = _Known(int(size), int(mtime_ns), str(key))
            for key, (width, height) in data["thumbs"].items():
                self._sizes[str(key)] = (int(width), int(height))
            for key, reason in data["failed"].items():
                self._failed[str(key)] = str(reason)
        except (KeyError, TypeError, ValueError, AttributeError):
            self._files.clear()
            self._sizes.clear()
            self._failed.clear()

    def thumbs_for(self, paths: list[Path]) -> dict[Path, Thumb | str]:
        """Each image's thumbnail, or why it has none (not on disk, unreadable)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._on_disk = {entry.name for entry in os.scandir(self.folder)}
        results: dict[Path, Thumb | str] = {}
        to_make: list[tuple[Path, os.stat_result]] = []
        for path in dict.fromkeys(paths):
            try:
                status = path.stat()
            except OSError:
                results[path] = NOT_ON_DISK
                continue
            known = self._files.get(str(path))
            if (
                known is not None
                and known.size == status.st_size
                and known.mtime_ns == status.st_mtime_ns
                and (known.key in self._failed or self._ready(known.key))
            ):
                results[path] = self._failed.get(known.key) or self._thumb(known.key)
            else:
                to_make.append((path, status))
        if to_make:
            # Pillow lets go of the GIL while it decodes, shrinks and encodes: two
            # threads keep both cores of a small machine busy.
            with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
                for (path, _), (outcome, made) in zip(
                    to_make,
                    pool.map(lambda item: self._make(item[0], item[1]), to_make),
                    strict=True,
                ):
                    results[path] = outcome
                    self.made += made
        return results

    def _ready(self, key: str) -> bool:
        return key in self._sizes and self._name(key) in self._on_disk

    def _make(self, path: Path, status: os.stat_result) -> tuple[Thumb | str, bool]:
        """The image's thumbnail, made unless its content has one; and whether it was made."""
        try:
            data = path.read_bytes()
        except OSError:
            return NOT_ON_DISK, False
        key = hashlib.sha256(data).hexdigest()[:32]
        known = _Known(status.st_size, status.st_mtime_ns, key)
        # Two files with the same content: one makes the thumbnail, the other waits
        # for it and shares it (they would otherwise write the same temp file).
        with self._guard:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._failed:
                self._files[str(path)] = known
                return self._failed[key], False
            if not self._ready(key) and self._name(key) in self._on_disk:
                self._adopt(key)  # made by a build that was killed before its manifest
            if self._ready(key):
                self._files[str(path)] = known
                return self._thumb(key), False
            shrunk = _shrink(data)
            if isinstance(shrunk, str):
                self._failed[key] = shrunk
                self._files[str(path)] = known
                return shrunk, False
            target = self.folder / self._name(key)
            part = self.folder / f".{target.name}.{os.getpid()}.part"
            try:
                with open(part, "wb") as handle:
                    # JPEG, not WebP: as good to the eye at this size, and 1 ms to
                    # encode where WebP took 4 to 24 ms; a first build is mostly this.
                    shrunk.save(handle, "JPEG", quality=85, optimize=True)
                os.replace(part, target)
            except OSError as exc:
                part.unlink(missing_ok=True)
                return f"thumbnail not written: {exc.strerror or exc}", False
            self._sizes[key] = shrunk.size
            self._on_disk.add(target.name)
            self._files[str(path)] = known
            return self._thumb(key), True

    def _adopt(self, key: str) -> None:
        """Learn the size of a thumbnail on disk from its header (no decoding)."""
        from PIL import Image

        try:
            with Image.open(self.folder / self._name(key)) as thumb:
                self._sizes[key] = thumb.size
        except (OSError, ValueError, SyntaxError):
            self._on_disk.discard(self._name(key))  # damaged: made again

    def _name(self, key: str) -> str:
        return f"{key}.jpg"

    def _thumb(self, key: str) -> Thumb:
        width, height = self._sizes[key]
        return Thumb(self._name(key), width, height)

    def keep_only(self, used: set[str]) -> None:
        """Delete the thumbnails no longer used, and forget files that are gone."""
        for entry in os.scandir(self.folder):
            if THUMB_NAME.fullmatch(entry.name) and entry.name not in used:
                Path(entry.path).unlink(missing_ok=True)
        self._sizes = {k: v for k, v in self._sizes.items() if self._name(k) in used}
        self._files = {
            p: k for p, k in self._files.items() if k.key in self._sizes or k.key in self._failed
        }
        kept = {k.key for k in self._files.values()}
        self._failed = {k: v for k, v in self._failed.items() if k in kept}

    def save(self) -> None:
        """Write the manifest atomically."""
        data = {
            "version": VERSION,
            "files": {p: [k.size, k.mtime_ns, k.key] for p, k in sorted(self._files.items())},
            "thumbs": {k: list(size) for k, size in sorted(self._sizes.items())},
            "failed": dict(sorted(self._failed.items())),
        }
        write_atomically(self.folder / MANIFEST, json.dumps(data).encode("utf-8"))


def _shrink(data: bytes) -> Any:
    """The image in `data` shrunk into BOX (an RGB PIL image), or why it could not be."""
    import io

    from PIL import Image

    from soulcli.imagefiles import sniff_extension
    from soulcli.sheet import fitted

    try:
        with Image.open(io.BytesIO(data)) as probe:  # reads the header only
            width, height = probe.size
        if width * height > MAX_PIXELS:
            return f"too large for a thumbnail: {width}x{height}"
        shrunk = fitted(io.BytesIO(data), BOX)
    except MemoryError:
        return "too large for a thumbnail"
    except Exception as exc:  # a thumbnail is never worth stopping the gallery for
        shrunk = one_line(exc, 120) or "unreadable"
    if isinstance(shrunk, str):
        # Pillow's reasons name its file object, not the user's file: say what it is.
        kind = (sniff_extension(data[:64]) or "").lstrip(".")
        if kind in ("", "png", "jpg", "webp", "gif"):
            return "unreadable"  # a format Pillow reads: this file is damaged
        return f"no thumbnail for {kind.upper()}"
    return shrunk
