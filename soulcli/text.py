"""Make text from servers and users safe to print on one terminal line."""

from __future__ import annotations

import re

# Terminal escape sequences (CSI such as colours, and OSC such as window titles).
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")
# C0 controls (tab and newline included: messages are one line), DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def one_line(text: object, limit: int = 300) -> str:
    """Return `text` with control characters collapsed to spaces, shortened to `limit`."""
    raw = str(text)
    # Lone surrogates (from undecodable input) cannot be written to a UTF-8 stream.
    raw = raw.encode("utf-8", "replace").decode("utf-8")
    cleaned = _CONTROL.sub(" ", _ESCAPES.sub("", raw)).strip()
    cleaned = re.sub(r" {2,}", " ", cleaned)
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "…"
    return cleaned


def shorten(text: str, limit: int) -> str:
    """Return `text` cut to at most `limit` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cell_width(text: str) -> int:
    """Terminal cells `text` takes: 2 for wide (CJK) characters, 0 for combining marks.

    unicodedata is a small C module: aligning piped columns must not cost Rich's import.
    """
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )
