"""What format a downloaded image is, from its bytes, and whether it arrived whole.

A file is whole when its structure is complete up to the format's end marker;
bytes after that marker (camera maker notes, motion-photo data, padding) are
allowed, as real files carry them. Files are checked by reading them back in
chunks, so memory stays flat whatever their size.
"""

from __future__ import annotations

import re
from typing import BinaryIO

HEAD_BYTES = 64  # enough for every signature below, ftyp brands included
_CHUNK = 1024 * 1024

# ISO base media (HEIF) brands: the major brand, or a compatible one, names the format.
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1"}

# Extensions for image types soul cannot recognise from the bytes (kept as the server
# calls them). A type soul can recognise is never taken from the header alone.
UNSNIFFED_TYPES = {
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
    "image/jxl": ".jxl",
    "image/x-icon": ".ico",
    "image/vnd.microsoft.icon": ".ico",
}
SNIFFED_TYPES = {
    "image/png",
    "image/jpeg",
    "image/jpg",
    "image/webp",
    "image/gif",
    "image/avif",
    "image/heic",
    "image/heif",
}


class NotWhole(Exception):
    """The file's own structure shows it was cut short."""


def sniff_extension(head: bytes) -> str | None:
    """The file extension for known image signatures in the first bytes, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return ".webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return ".gif"
    if head[4:8] == b"ftyp":
        return _heif_extension(head)
    return None


def _heif_extension(head: bytes) -> str | None:
    box_size = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    # Compatible brands follow the major brand and the minor version, 4 bytes each.
    compatible = {head[i : i + 4] for i in range(16, min(box_size, len(head)) - 3, 4)}
    brands = {major} | compatible
    if brands & _AVIF_BRANDS:
        return ".avif"
    if brands & _HEIC_BRANDS:
        return ".heic"
    if brands & _HEIF_BRANDS:
        return ".heif"
    return None


def looks_like_text(head: bytes) -> bool:
    """Whether a body starts like an HTML page, JSON or other text rather than image bytes."""
    start = head.lstrip()[:1]
    return start in (b"<", b"{", b"[") or head.startswith(b"\xef\xbb\xbf")


def check_whole(extension: str, handle: BinaryIO, size: int) -> None:
    """Raise NotWhole when the file's structure ends before its end marker."""
    handle.seek(0)
    if extension == ".png":
        _check_png(handle)
    elif extension == ".jpg":
        _check_jpeg(handle)
    elif extension == ".webp":
        head = handle.read(12)
        if int.from_bytes(head[4:8], "little") + 8 > size:
            raise NotWhole("the WebP is shorter than its header says (cut short)")
    elif extension == ".gif":
        _check_gif(handle)
    elif extension in (".avif", ".heic", ".heif"):
        _check_boxes(handle, size)


def _check_png(handle: BinaryIO) -> None:
    """Walk the chunks (length, type, data, CRC) from the signature to a whole IEND chunk."""
    position = 8
    while True:
        handle.seek(position)
        header = handle.read(12)
        if len(header) < 8 or (header[4:8] == b"IEND" and len(header) < 12):
            raise NotWhole("the PNG ends before its IEND chunk (cut short)")
        if header[4:8] == b"IEND":
            return
        position += 12 + int.from_bytes(header[0:4], "big")


def _check_boxes(handle: BinaryIO, size: int) -> None:
    """Walk the top-level ISO boxes until `meta` and `mdat` have both fitted in the file.

    HEIF (AVIF and HEIC) needs a `meta` box and keeps the image in `mdat`: a file cut
    before either is whole is caught, even at a box boundary. Bytes after both are a
    trailer, as for the other formats.
    """
    position = 0
    seen: set[bytes] = set()
    while not {b"meta", b"mdat"} <= seen:
        handle.seek(position)
        header = handle.read(16)
        if len(header) < 8:
            raise NotWhole("the image ends before its data (cut short)")
        box = int.from_bytes(header[0:4], "big")
        if box == 0:  # "to the end of the file"
            box = size - position
        elif box == 1:
            box = int.from_bytes(header[8:16], "big")
        if box < 8 or position + box > size:
            raise NotWhole("the image is shorter than its boxes say (cut short)")
        seen.add(header[4:8])
        position += box


def _check_gif(handle: BinaryIO) -> None:
    """Walk the blocks (extensions, images, their sub-blocks) to the trailer byte."""
    cut = NotWhole("the GIF ends before its trailer (cut short)")
    window = _Window(handle)
    if not window.cover(13):
        raise cut
    position = 13 + _colour_table(window.byte(10))
    while True:
        if not window.cover(position + 1):
            raise cut
        block = window.byte(position)
        if block == 0x3B:  # trailer: whole
            return
        if block == 0x21:  # extension: introducer and label, then sub-blocks
            position += 2
        elif block == 0x2C:  # image: descriptor, local colour table, LZW code size
            if not window.cover(position + 10):
                raise cut
            position += 10 + _colour_table(window.byte(position + 9)) + 1
        else:
            raise NotWhole("the GIF has a broken block structure")
        while True:  # sub-blocks, each led by its length, ended by a zero length
            window.forget_before(position)
            if not window.cover(position + 1):
                raise cut
            length = window.byte(position)
            position += 1 + length
            if length == 0:
                break


def _colour_table(flags: int) -> int:
    """The size of the colour table that packed `flags` announce (0 when there is none)."""
    return 3 * (2 << (flags & 0x07)) if flags & 0x80 else 0


# In entropy-coded JPEG data a 0xFF byte is followed by 0x00 (a stuffed byte), a
# restart marker (0xD0-0xD7) or more 0xFF fill; anything else starts a real marker.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


class _Window:
    """Forward-only random access to a file, holding at most a couple of chunks."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.base = 0
        self.data = b""

    def cover(self, end: int) -> bool:
        """Make the window reach offset `end` (exclusive); False if the file is shorter."""
        while self.base + len(self.data) < end:
            chunk = self._handle.read(_CHUNK)
            if not chunk:
                return False
            self.data += chunk
        return True

    def forget_before(self, position: int) -> None:
        """Drop what lies before `position`, but never past what was read: the file's
        offset must stay at the end of `data`."""
        if position - self.base > _CHUNK:
            keep = min(position - self.base, len(self.data))
            self.data = self.data[keep:]
            self.base += keep

    def byte(self, position: int) -> int:
        return self.data[position - self.base]

    def find_marker(self, position: int) -> int | None:
        """The offset of the next real marker at or after `position` in scan data."""
        while True:
            self.forget_before(position)
            match = _JPEG_MARKER.search(self.data, position - self.base)
            if match is not None:
                return self.base + match.start()
            # Keep the last byte: it may be a 0xFF whose partner is in the next chunk.
            position = max(position, self.base + len(self.data) - 1)
            if not self.cover(self.base + len(self.data) + 1):
                return None


def _check_jpeg(handle: BinaryIO) -> None:
    """Walk the segments from SOI to EOI, skipping each by its length, scans by their markers."""
    cut = NotWhole("the JPEG ends before its end marker (cut short)")
    window = _Window(handle)
    position = 2  # after SOI
    while True:
        window.forget_before(position)
        if not window.cover(position + 2):
            raise cut
        if window.byte(position) != 0xFF:
            # Stray bytes before a marker: decoders skip them ("extraneous bytes"), so do we.
            found = window.find_marker(position)
            if found is None:
                raise cut
            position = found
            continue
        marker = window.byte(position + 1)
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == 0xD9:  # EOI: whole; anything after it is a trailer
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            position += 2
            continue
        if not window.cover(position + 4):
            raise cut
        length = (window.byte(position + 2) << 8) | window.byte(position + 3)
        if length < 2:
            raise NotWhole("the JPEG has a broken segment structure")
        position += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next marker
            found = window.find_marker(position)
            if found is None:
                raise cut
            position = found


def same_content(a: BinaryIO, b: BinaryIO) -> bool:
    """Whether two open files hold the same bytes, compared a chunk at a time."""
    while True:
        left = a.read(_CHUNK)
        right = b.read(_CHUNK)
        if left != right:
            return False
        if not left:
            return True
