"""`soul styles` and style-name resolution: offline, before any network call."""

from __future__ import annotations

import json

import pytest

from soulcli.catalog import load_styles, resolve_style
from soulcli.errors import UsageError
from tests.conftest import invoke


def test_catalog_has_the_60_distinct_styles() -> None:
    styles = load_styles()
    assert len(styles) == 60
    assert len({s.id for s in styles}) == 60


def test_piped_styles_are_plain_columns_and_the_price_line_goes_to_stderr() -> None:
    result = invoke("styles")
    assert result.code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ID", "PREVIEW"]
    assert len(lines) == 61
    for style, line in zip(load_styles(), lines[1:], strict=True):
        assert line.startswith(style.name) and style.id in line
        assert line.endswith(style.preview_url) and line == line.rstrip()
    assert not any(char in result.stdout for char in "│─┃━")  # no box drawing
    assert "Price" not in result.stdout
    assert "Price per request of 4 images" in result.stderr
    assert "720p: 0.1 PTC (0.025 PTC per image)" in result.stderr
    assert "1080p: 0.2 PTC (0.05 PTC per image)" in result.stderr


def test_search_filters_case_insensitively() -> None:
    result = invoke("styles", "--search", "y2k")
    assert result.code == 0
    rows = [line for line in result.stdout.splitlines() if "cdn.higgsfield.ai" in line]
    assert len(rows) == 2
    assert "Y2K posters" in result.stdout and "Tokyo" not in result.stdout


def test_search_json_is_a_list_of_styles() -> None:
    result = invoke("styles", "-S", "BEACH", "--json")
    names = [s["name"] for s in json.loads(result.stdout)]
    assert names == ["Night Beach", "Office beach"]
    full = json.loads(invoke("styles", "--json").stdout)
    assert len(full) == 60 and set(full[0]) == {"id", "name", "preview_url", "price_ptc"}
    assert all(style["price_ptc"] == {"720p": 0.1, "1080p": 0.2} for style in full)


def test_search_without_match_says_so_on_stderr() -> None:
    result = invoke("styles", "--search", "zzz-nothing")
    assert result.code == 0 and result.stdout == ""
    assert "no style matches" in result.stderr


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("y2k", "Y2K"),
        ("Y2K posters", "Y2K posters"),
        ("Tokyo", "Tokyo streetstyle"),
        ("tokyo streetstyle", "Tokyo streetstyle"),
        ("streetstyle", "Tokyo streetstyle"),
        ("general", "GENERAL"),
        ("  night   beach ", "Night Beach"),
        ("nightbeach", "Night Beach"),
        ("6b9e6b4d-325a-4a78-a0fb-a00ddf612380", "Y2K"),
    ],
)
def test_style_resolution(query: str, name: str) -> None:
    assert resolve_style(query).name == name


def test_unknown_uuid_is_used_as_is() -> None:
    style = resolve_style("00000000-1111-2222-3333-444444444444")
    assert style.id == "00000000-1111-2222-3333-444444444444"


def test_ambiguous_style_lists_candidates() -> None:
    with pytest.raises(UsageError) as caught:
        resolve_style("0.5")
    assert "'0.5 outfit'" in caught.value.message and "'0.5 selfie'" in caught.value.message


def test_unknown_style_suggests_close_names() -> None:
    with pytest.raises(UsageError) as caught:
        resolve_style("Tokio streetstyle")
    assert caught.value.hint is not None and "Tokyo streetstyle" in caught.value.hint
