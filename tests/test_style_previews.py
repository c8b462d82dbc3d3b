"""Style previews: fetched once from the CDN (the fake's here), cached whole, used offline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

from soulcli.catalog import Style, load_styles
from soulcli.fake302 import PREVIEW_SIZE, Fake302
from soulcli.imagefiles import check_whole
from soulcli.paths import cache_dir
from soulcli.previews import cached_previews, preview_url, previews_dir
from tests.conftest import free_port

MISSING = Style(
    "00000000-0000-4000-8000-000000000000",
    "Not on the CDN",
    "https://cdn.higgsfield.ai/soul-style/00000000-0000-4000-8000-00000000dead.jpg",
)


@pytest.fixture
def cdn(fake: Fake302, monkeypatch: pytest.MonkeyPatch) -> Fake302:
    """The fake's image host stands in for the CDN."""
    monkeypatch.setenv("SOUL_PREVIEW_BASE", f"{fake.image_base}/soul-style")
    return fake


def preview_requests(fake: Fake302) -> list[str]:
    return [r.path for r in fake.requests(server="images") if r.path.startswith("/soul-style/")]


def file_of(style: Style) -> str:
    return style.preview_url.rsplit("/", 1)[-1]


def assert_whole_preview(path: Path) -> None:
    """A whole JPEG (or WebP, as 13 catalog previews are) of the preview size."""
    webp = path.suffix == ".webp"
    with path.open("rb") as handle:
        check_whole(path.suffix, handle, path.stat().st_size)  # raises NotWhole if cut
    with Image.open(path) as image:
        assert image.format == ("WEBP" if webp else "JPEG") and image.size == PREVIEW_SIZE
        image.load()


def test_each_preview_is_downloaded_once_then_used_with_no_network(
    cdn: Fake302, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    styles = list(load_styles()[:6])
    first = cached_previews(styles)
    assert list(first) == [style.id for style in styles]
    assert sorted(preview_requests(cdn)) == sorted(f"/soul-style/{file_of(s)}" for s in styles)
    for style in styles:
        path = first[style.id]
        assert path is not None and path.parent == previews_dir()
        assert path.name == file_of(style)
        assert_whole_preview(path)
    assert sorted(p.name for p in previews_dir().iterdir()) == sorted(map(file_of, styles))

    assert cached_previews(styles) == first
    assert len(preview_requests(cdn)) == len(styles)  # the second call asked for nothing
    # Offline: the same base on a port nothing listens on still finds everything cached.
    monkeypatch.setenv("SOUL_PREVIEW_BASE", cdn.image_base + "/soul-style")
    cdn.stop()
    assert cached_previews(styles) == first


def test_every_catalog_style_has_its_own_preview(cdn: Fake302) -> None:
    styles = list(load_styles())
    paths = cached_previews(styles)
    assert len(preview_requests(cdn)) == len(styles) == 60
    files = [paths[style.id] for style in styles]
    assert all(path is not None for path in files)
    assert len({path.read_bytes() for path in files if path is not None}) == 60
    assert {path.suffix for path in files if path is not None} == {".jpg", ".webp"}


def test_a_failed_preview_is_none_is_not_cached_and_is_tried_again(cdn: Fake302) -> None:
    good = load_styles()[0]
    result = cached_previews([good, MISSING])
    assert result[MISSING.id] is None  # the fake's CDN answers 404 for it
    assert result[good.id] is not None
    assert preview_requests(cdn).count(f"/soul-style/{file_of(MISSING)}") == 1
    assert [p.name for p in previews_dir().iterdir()] == [file_of(good)]  # no temp file left

    again = cached_previews([good, MISSING])
    assert again == result
    assert preview_requests(cdn).count(f"/soul-style/{file_of(MISSING)}") == 2
    assert preview_requests(cdn).count(f"/soul-style/{file_of(good)}") == 1


@pytest.mark.parametrize("fault", ["500", "html", "cut", "truncate", "redirect_http"])
def test_a_broken_answer_is_none_and_the_next_call_gets_the_preview(
    cdn: Fake302, fault: str
) -> None:
    style = load_styles()[3]
    cdn.state.inject("image", fault)
    assert cached_previews([style]) == {style.id: None}
    assert list(previews_dir().iterdir()) == []  # nothing half-written, nothing kept
    path = cached_previews([style])[style.id]
    assert path is not None
    assert_whole_preview(path)


def test_no_credential_reaches_the_cdn(cdn: Fake302, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUL_API_KEY", cdn.settings.api_key)
    monkeypatch.setenv("SOUL_BASE_URL", cdn.image_base)  # even an API on the same host
    assert all(cached_previews(list(load_styles()[:3])).values())
    requests = cdn.requests(server="images")
    assert requests and all("authorization" not in r.headers for r in requests)
    assert all(cdn.settings.api_key not in str(r.headers) for r in requests)


def test_downloads_run_concurrently(cdn: Fake302) -> None:
    cdn.settings.image_latency = 0.5  # every preview takes half a second to arrive
    styles = list(load_styles()[:8])
    started = time.monotonic()
    result = cached_previews(styles)
    elapsed = time.monotonic() - started
    assert all(result.values())
    spans = cdn.state.image_spans
    assert len(spans) == 8
    most = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert most >= 4, spans  # several previews in flight at once
    assert elapsed < 8 * 0.5 / 2, elapsed


def test_a_slow_cdn_gives_none_within_the_timeout(cdn: Fake302) -> None:
    cdn.settings.image_latency = 5
    style = load_styles()[0]
    started = time.monotonic()
    assert cached_previews([style], timeout=0.5) == {style.id: None}
    assert time.monotonic() - started < 3
    assert list(previews_dir().iterdir()) == []


def test_an_unreachable_cdn_gives_none_and_no_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOUL_PREVIEW_BASE", f"http://127.0.0.1:{free_port()}/soul-style")
    styles = list(load_styles()[:3])
    assert cached_previews(styles, timeout=2) == {style.id: None for style in styles}


def test_a_style_without_a_preview_url_is_none_without_a_request(cdn: Fake302) -> None:
    bare = Style("11111111-1111-4111-8111-111111111111", "No picture")
    assert cached_previews([bare]) == {bare.id: None}
    assert preview_requests(cdn) == []


def test_the_cache_dir_honours_soul_cache_dir(
    cdn: Fake302, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SOUL_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"
    path = cached_previews([load_styles()[0]])[load_styles()[0].id]
    assert path is not None and path.is_relative_to(tmp_path / "elsewhere" / "previews")
    monkeypatch.delenv("SOUL_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg-cache" / "soul"  # platformdirs, under XDG_CACHE_HOME


def test_soul_preview_base_replaces_only_what_precedes_the_file_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    style = load_styles()[0]
    assert preview_url(style) == style.preview_url
    assert previews_dir() == tmp_path / "cache" / "previews"
    monkeypatch.setenv("SOUL_PREVIEW_BASE", "http://127.0.0.1:8303/soul-style/")
    assert preview_url(style) == f"http://127.0.0.1:8303/soul-style/{file_of(style)}"
    # The stand-in pictures are cached apart, never used once the base is unset.
    assert previews_dir().parent == tmp_path / "cache" / "previews"


def test_a_plain_http_cdn_that_is_not_loopback_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SOUL_PREVIEW_BASE", "http://cdn.example.invalid/soul-style")
    style = load_styles()[0]
    assert cached_previews([style], timeout=2) == {style.id: None}
