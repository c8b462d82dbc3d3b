"""What a mistyped `--style` suggests: the style meant, first, and never a style picked for it."""

from __future__ import annotations

import json

import pytest

from soulcli.catalog import load_styles, resolve_style
from soulcli.errors import UsageError
from soulcli.fake302 import Fake302
from soulcli.fuzzy import closest
from tests.conftest import invoke, run_soul

# What a user types for a style that exists, and the style that must be suggested
# first. Every row is a typo that must not resolve: it only earns a hint.
TYPOS: list[tuple[str, str]] = [
    # a wrong or transposed letter
    ("Tokio", "Tokyo streetstyle"),
    ("Tokyp", "Tokyo streetstyle"),
    ("Japnadi", "Japandi"),
    ("Medevial", "Medieval"),
    ("Gropcore", "Gorpcore"),
    ("Artwrok", "Artwork"),
    ("Movei", "Movie"),
    ("Dupliacte", "Duplicate"),
    ("Slefcare", "Selfcare"),
    ("Sadn", "Sand"),
    ("Grafitti", "Graffiti"),
    ("Quite luxury", "Quiet luxury"),
    ("90s grian", "90s grain"),
    ("Lnog legs", "Long legs"),
    # a missing or extra letter
    ("Glich", "Glitch"),
    ("Medival", "Medieval"),
    ("Realstic", "Realistic"),
    ("iphne", "iPhone"),
    ("Tumbler", "Tumblr"),
    ("Ofice beach", "Office beach"),
    ("Rainny day", "Rainy Day"),
    ("Fogy morning", "Foggy Morning"),
    ("Coquete core", "Coquette core"),
    ("Giant Accesory", "Giant Accessory"),
    ("Shoes check", "Shoe Check"),
    ("Sittin on the street", "Sitting on the street"),
    ("Throught the glass", "Through The Glass"),
    # wrong case, on top of a typo
    ("JAPANDY", "Japandi"),
    ("GRUNGY", "Grunge"),
    ("generla", "GENERAL"),
    # spacing and punctuation, on top of a typo
    ("fish eyes", "Fisheye"),
    ("avant gard", "Avant-garde"),
    ("avantgard", "Avant-garde"),
    ("Fashon show", "FashionShow"),
    ("Digtal cam", "DigitalCam"),
    ("Help it too big", "Help It's Too Big"),
    ("2000 cam", "2000s Cam"),
    ("0.5 outfti", "0.5 outfit"),
    # part of a name, or a word of it, mistyped or spelt as the user would
    ("tokyo strete", "Tokyo streetstyle"),
    ("Tokio street", "Tokyo streetstyle"),
    ("streetstyel", "Tokyo streetstyle"),
    ("Elevater", "Elevator Mirror"),
    ("photo booth", "Vintage PhotoBooth"),
    ("clips", "HairClips"),
    ("glazed skin", "Glazed doll skin makeup"),
    ("Pixelated face", "PixeletedFace"),
    ("360 camera", "360 cam"),
]

# Words with no style behind them: no "did you mean", a pointer to the list instead.
NO_STYLE = ["anime", "cyberpunk", "watercolor", "portrait", "cat", "beach house"]

# Spelt differently from the catalog only by case, spaces or punctuation: these resolve.
SPELLINGS: list[tuple[str, str]] = [
    ("fish eye", "Fisheye"),
    ("FISH-EYE", "Fisheye"),
    ("avantgarde", "Avant-garde"),
    ("Avant garde", "Avant-garde"),
    ("ring selfie", "RingSelfie"),
    ("help its too big", "Help It's Too Big"),
    ("505 room", "505room"),
    ("self-care", "Selfcare"),
    ("paperface", "Paper Face"),
]


def hint_for(query: str) -> str:
    """The hint of the error `resolve_style` must raise for `query`."""
    with pytest.raises(UsageError) as caught:
        resolve_style(query)
    assert caught.value.message == f"unknown style {' '.join(query.split())!r}"
    assert caught.value.hint is not None
    return caught.value.hint


def suggested(hint: str) -> list[str]:
    """The style names a "did you mean" hint offers, in order."""
    names = {s.name for s in load_styles()}
    offered = hint.split("?")[0].removeprefix("did you mean ")
    found = [n for n in names if repr(n) in offered]
    return sorted(found, key=lambda n: offered.index(repr(n)))


def test_the_table_is_big_enough() -> None:
    assert len(TYPOS) >= 20
    assert {name for _, name in TYPOS} <= {s.name for s in load_styles()}


@pytest.mark.parametrize(("typo", "meant"), TYPOS, ids=[t for t, _ in TYPOS])
def test_a_typo_suggests_the_style_meant_first(typo: str, meant: str) -> None:
    hint = hint_for(typo)
    assert hint.startswith("did you mean "), hint
    names = suggested(hint)
    assert names[0] == meant, hint
    assert len(names) <= 3
    # The CLI puts the hint in parentheses: it must not nest its own.
    assert "(" not in hint and ")" not in hint


@pytest.mark.parametrize("word", NO_STYLE)
def test_a_word_with_no_style_gets_no_suggestion(word: str) -> None:
    hint = hint_for(word)
    assert "did you mean" not in hint and "Japandi" not in hint
    assert "soul styles --search" in hint


@pytest.mark.parametrize(("spelling", "name"), SPELLINGS, ids=[s for s, _ in SPELLINGS])
def test_case_spaces_and_punctuation_do_not_matter(spelling: str, name: str) -> None:
    assert resolve_style(spelling).name == name


def test_the_hint_names_a_search_that_finds_something() -> None:
    assert hint_for("Tokio") == (
        "did you mean 'Tokyo streetstyle'? see also `soul styles --search tok`"
    )
    assert hint_for("medx") == "no style name is close; try `soul styles --search med`"
    # Nothing in any name starts like 'sadn': the whole list it is.
    assert hint_for("Sadn") == "did you mean 'Sand'? see also `soul styles`"


def test_several_candidates_read_as_one_question() -> None:
    assert hint_for("Medevial").startswith("did you mean 'Medieval' or 'Mixed Media'? ")
    assert hint_for("beachs").startswith(
        "did you mean 'Night Beach', 'Office beach' or 'Bleached brows'? "
    )


def test_closest_keeps_at_most_the_limit_best_first() -> None:
    choices = {"one": ["abcdef"], "two": ["abcdex"], "three": ["abcxyz"], "four": ["zzzzzz"]}
    assert closest("abcdef", choices) == ["one", "two"]
    assert closest("abcdef", choices, limit=1) == ["one"]
    assert closest("abcdef", choices, cutoff=0) == ["one", "two", "three"]


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("Tokio", "Tokyo streetstyle"), ("Tokyp", "Tokyo streetstyle"), ("glich", "Glitch")],
)
def test_a_typo_sends_nothing(fake: Fake302, typo: str, meant: str) -> None:
    result = run_soul("generate", "a dog", "--style", typo, fake=fake)
    assert result.code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"soul: error: unknown style {typo!r} (did you mean {meant!r}")
    assert result.stdout == ""
    assert fake.post_count() == 0 and fake.requests() == []


def test_the_printed_line_for_tokio(fake: Fake302) -> None:
    result = run_soul("generate", "a dog", "--style", "Tokio", fake=fake)
    assert result.stderr.strip() == (
        "soul: error: unknown style 'Tokio' "
        "(did you mean 'Tokyo streetstyle'? see also `soul styles --search tok`)"
    )


def test_anime_through_the_cli(fake: Fake302) -> None:
    result = run_soul("generate", "a dog", "--style", "anime", fake=fake)
    assert result.code == 2
    assert "did you mean" not in result.stderr and "soul styles --search" in result.stderr
    assert fake.requests() == []


def test_a_spacing_variant_resolves_through_the_cli(fake: Fake302) -> None:
    result = run_soul("generate", "a dog", "--style", "fish eye", "--dry-run", fake=fake)
    assert result.code == 0, result.stderr
    fisheye = resolve_style("Fisheye")
    assert json.loads(result.stdout)["style_id"] == fisheye.id
    assert fake.requests() == []


def test_a_mistyped_command_gets_the_same_matcher() -> None:
    result = invoke("GENERATE", "a dog")
    assert result.code == 2
    assert "did you mean 'generate'?" in result.stderr
