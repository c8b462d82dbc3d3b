"""Fuzzy "did you mean" matching, shared by style names and command names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# A score is rapidfuzz's fuzz.ratio, 0-100. Measured on the table in
# tests/test_style_suggestions.py: real typos score 74 or more against the style
# meant, words with no style behind them ('anime', 'cyberpunk') 67 or less.
CUTOFF = 70.0


def closest(
    query: str, choices: Mapping[str, Iterable[str]], *, limit: int = 3, cutoff: float = CUTOFF
) -> list[str]:
    """The choices whose best key is within `cutoff` of `query`: best first, at most `limit`.

    `choices` maps what may be suggested to the strings it is compared by (a style's
    whole name and its words). Ties keep the order of `choices`.
    """
    # Imported here: only a mistyped name pays for it, not every `soul` start-up.
    from rapidfuzz import fuzz

    # fuzz.ratio (normalised Indel similarity) counts the unmatched letters of both
    # sides. WRatio and partial_ratio score a key found inside the query, or the
    # reverse, near 100 whatever else is around it ('cat' was 'Duplicate', 'Tokio
    # street' was 'Sitting on the street'); Levenshtein distances missed partial
    # names such as 'tokyo strete'. ratio was the one right on every row.
    scored: list[tuple[float, str]] = []
    for choice, keys in choices.items():
        score = max((fuzz.ratio(query, key) for key in keys), default=0.0)
        if score >= cutoff:
            scored.append((score, choice))
    scored.sort(key=lambda pair: -pair[0])  # a stable sort: ties keep the choices' order
    return [choice for _, choice in scored[:limit]]
