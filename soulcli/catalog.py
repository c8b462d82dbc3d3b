"""The style catalog shipped with soul, and how a user's style name is resolved."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from soulcli.constants import DEFAULT_STYLE as DEFAULT_STYLE
from soulcli.errors import UsageError
from soulcli.fuzzy import closest

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_CATALOG_FILE = Path(__file__).parent / "data" / "styles.json"


class Style:
    """One catalog entry (a plain class: no dataclasses import on the `soul styles` path)."""

    __slots__ = ("id", "name", "preview_url")

    def __init__(self, id: str, name: str, preview_url: str = "") -> None:
        self.id = id
        self.name = name
        self.preview_url = preview_url

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Style) and (self.id, self.name) == (other.id, other.name)

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Style({self.id!r}, {self.name!r})"


@cache
def load_styles() -> tuple[Style, ...]:
    """Return the 60 styles, in the provider's order (no network: 302.AI has no style list)."""
    entries = json.loads(_CATALOG_FILE.read_text(encoding="utf-8"))
    return tuple(Style(e["id"], e["name"], e.get("preview_url", "")) for e in entries)


def is_uuid(text: str) -> bool:
    return bool(_UUID.match(text))


def _compact(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^0-9a-z.]+", text.lower()) if w]


def search_styles(query: str) -> list[Style]:
    """Return the styles whose name contains `query`, or whose id starts with it
    (case-insensitively): `ee` inside an id would match styles for no visible reason."""
    needle = query.strip().lower()
    return [s for s in load_styles() if needle in s.name.lower() or s.id.startswith(needle)]


def resolve_style(query: str) -> Style:
    """Turn a UUID or a (partial) style name into a Style, or raise a UsageError.

    A UUID is used as is; then a case-insensitive exact name wins; then a unique
    name prefix; then a unique word of a name (`Tokyo` finds `Tokyo streetstyle`).
    """
    text = " ".join(query.split())
    if not text:
        raise UsageError("the style is empty", hint="see `soul styles` for the list")
    styles = load_styles()
    if is_uuid(text):
        for style in styles:
            if style.id.lower() == text.lower():
                return style
        return Style(id=text.lower(), name=text.lower())
    lowered = text.lower()
    for match in (
        lambda s: s.name.lower() == lowered,
        lambda s: _compact(s.name) == _compact(text) and _compact(text) != "",
        lambda s: s.name.lower().startswith(lowered),
        lambda s: any(w.startswith(lowered) for w in _words(s.name)),
    ):
        found = [s for s in styles if match(s)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(repr(s.name) for s in found)
            raise UsageError(f"style {text!r} is ambiguous: it matches {names}")
    raise UsageError(f"unknown style {text!r}", hint=_suggestion(text, styles))


def _suggestion(text: str, styles: tuple[Style, ...]) -> str:
    """The hint for an unknown style: the closest names, and a search that finds something.

    Only a hint: the caller still fails, so a typo never picks a style for a paid request.
    """
    names = closest(_compact(text), {s.name: _name_keys(s.name) for s in styles})
    word = _search_word(text, styles)
    search = f"`soul styles --search {word}`" if word else "`soul styles`"
    # No parentheses: the CLI prints the hint inside its own.
    if names:
        quoted = [repr(name) for name in names]
        either = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        return f"did you mean {either}? see also {search}"
    if word:
        return f"no style name is close; try {search}"
    return "no style name is close; see `soul styles` or `soul styles --search WORD`"


@cache
def _name_keys(name: str) -> frozenset[str]:
    """What a query is compared with: the whole name and its words, compacted.

    Camel-case parts count as words (`photo booth` is close to `Vintage PhotoBooth`).
    Words under 4 letters are left out: 'too' or 'day' come near any short query
    ('Tokio' scored 75 against "Help It's Too Big").
    """
    parts = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9.]+", name)
    words = {_compact(w) for w in (*re.split(r"[^0-9A-Za-z.]+", name), *parts)}
    return frozenset({_compact(name)} | {w for w in words if len(w) >= 4})


def _search_word(text: str, styles: tuple[Style, ...]) -> str | None:
    """The longest start (3 letters or more) of a word of `text` that some style name contains.

    `soul styles --search` with it lists at least one style; 'Tokio' gives 'tok'.
    """
    names = [s.name.lower() for s in styles]
    best: str | None = None
    for word in re.split(r"[^0-9a-z]+", text.lower()):
        for end in range(len(word), 2, -1):
            if best is not None and end <= len(best):
                break
            if any(word[:end] in name for name in names):
                best = word[:end]
                break
    return best
