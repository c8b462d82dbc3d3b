"""Image saving: names built by soul, never outside the output dir, whole files only."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soulcli.client import ApiClient
from soulcli.downloads import BadImage, ImageDownloader, check_image_url, image_name, safe_stem
from soulcli.fake302 import make_png
from soulcli.models import Job

PNG = make_png(8, 8)


@given(st.text())
@settings(max_examples=300)
def test_any_task_id_gives_a_plain_file_name(task_id: str) -> None:
    name = image_name(task_id, 1, ".png")
    assert "/" not in name and "\\" not in name and not name.startswith(".")
    assert Path(name).name == name and ".." not in safe_stem(task_id)


@pytest.mark.parametrize(
    "url",
    [
        "http://cdn.example/a.png",
        "ftp://x/a.png",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "https:///nohost.png",
    ],
)
def test_only_https_or_loopback_http_image_urls(url: str) -> None:
    with pytest.raises(BadImage):
        check_image_url(url)
    check_image_url("https://cdn.example/a.png")
    check_image_url("http://127.0.0.1:9/a.png")


def save(
    tmp_path: Path, handler: httpx.MockTransport, task_id: str = "higgsfield_t"
) -> tuple[list[Path], list[str]]:
    job = Job(1, "completed", raw_url="https://cdn.example/raw", min_url="https://cdn.example/min")
    with ImageDownloader(transport=handler, sleep=lambda s: None) as downloader:
        saved, missing = downloader.save_all(task_id, [job], tmp_path)
    return [s.path for s in saved], [m.reason for m in missing]


def test_hostile_task_id_still_saves_inside_the_output_dir(tmp_path: Path) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, content=PNG))
    paths, _ = save(tmp_path, transport, task_id="../../../etc/passwd")
    assert paths == [tmp_path / "etc_passwd_1.png"]


def test_raw_failure_falls_back_to_min(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/raw":
            return httpx.Response(404)
        return httpx.Response(200, content=PNG)

    paths, missing = save(tmp_path, httpx.MockTransport(handler))
    assert len(paths) == 1 and missing == []
    assert paths[0].read_bytes() == PNG


def test_html_instead_of_an_image_is_refused(tmp_path: Path) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, html="<html>login</html>"))
    paths, missing = save(tmp_path, transport)
    assert paths == [] and "not an image" in missing[0]
    assert list(tmp_path.iterdir()) == []


def test_png_without_iend_is_cut_short(tmp_path: Path) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, content=PNG[:-12]))
    paths, missing = save(tmp_path, transport)
    assert paths == [] and "cut short" in missing[0]
    assert list(tmp_path.iterdir()) == []


def test_oversized_image_is_refused_while_streaming(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([PNG[:16]] + [b"\0" * 65536] * 40))

    job = Job(1, "completed", raw_url="https://cdn.example/raw")
    with ImageDownloader(
        transport=httpx.MockTransport(handler), max_bytes=1_000_000, sleep=lambda s: None
    ) as downloader:
        saved, missing = downloader.save_all("t", [job], tmp_path)
    assert saved == [] and "larger than" in missing[0].reason
    assert list(tmp_path.iterdir()) == []


def test_output_path_that_is_a_file_is_reported(tmp_path: Path) -> None:
    from soulcli.errors import UsageError

    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    transport = httpx.MockTransport(lambda r: httpx.Response(200, content=PNG))
    with pytest.raises(UsageError, match="is a file, not a directory"):
        save(blocker, transport)


def test_unknown_image_bytes_are_kept_when_the_server_says_image(tmp_path: Path) -> None:
    body = b"\xff\x0aJPEG-XL-ish binary image bytes\xff" * 10
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, content=body, headers={"Content-Type": "image/jxl"})
    )
    paths, missing = save(tmp_path, transport)
    assert missing == [] and [p.name for p in paths] == ["higgsfield_t_1.jxl"]
    assert paths[0].read_bytes() == body


@pytest.mark.parametrize("content_type", ["image/webp", "image/png", "image/jpeg", "image/avif"])
def test_a_content_type_the_bytes_contradict_never_names_a_file(
    tmp_path: Path, content_type: str
) -> None:
    body = b"\x00\x01not the image the header claims\xff" * 10
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, content=body, headers={"Content-Type": content_type})
    )
    paths, missing = save(tmp_path, transport)
    assert paths == [] and f"not an image (it said {content_type})" in missing[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"error": "expired"}', "image/png"),
        (b"<html>expired</html>", "image/png"),
        (b"\x00\x01binary", "application/octet-stream"),
        (b"", "image/png"),
    ],
)
def test_text_or_untyped_bodies_are_not_images(
    tmp_path: Path, body: bytes, content_type: str
) -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, content=body, headers={"Content-Type": content_type})
    )
    paths, missing = save(tmp_path, transport)
    assert paths == [] and "not an image" in missing[0]
    assert list(tmp_path.iterdir()) == []


def four_jobs() -> list[Job]:
    return [Job(i, "completed", raw_url=f"https://cdn.example/{i}.png") for i in range(1, 5)]


def ended_pid() -> int:
    """The pid of a process that has just ended, as a soul killed by kill -9 has."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_a_killed_run_left_for_these_images_are_removed(tmp_path: Path) -> None:
    gone, running = ended_pid(), os.getpid()
    left_behind = [f".t_1.{gone}.0a1b2c3d.part", f".t_4.{gone}.sidecar.part"]
    kept = [
        f".t_2.{running}.0a1b2c3d.part",  # a soul that still runs is writing it
        f".other_1.{gone}.0a1b2c3d.part",  # another image's: not this save's business
        f".t_1.{gone}.0a1b2c3d.tmp",  # not a temp file soul makes
    ]
    for name in left_behind + kept:
        (tmp_path / name).write_bytes(b"half an image")
    transport = httpx.MockTransport(lambda r: httpx.Response(200, content=PNG))
    with ImageDownloader(transport=transport) as downloader:
        saved, missing = downloader.save_all("t", four_jobs(), tmp_path)
    assert missing == [] and [p.path.name for p in saved] == [f"t_{i}.png" for i in range(1, 5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        kept + [f"t_{i}.png" for i in range(1, 5)]
    )


def test_each_output_directory_is_listed_once_however_many_images_go_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing the folder for every image made a big batch into one folder O(n^2)."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    for i in range(50):
        (first / f"earlier_{i}.png").touch()
    gone = ended_pid()
    (first / f".t7_3.{gone}.0a1b2c3d.part").write_bytes(b"half")
    listed: list[Path] = []
    scandir = os.scandir

    def counting_scandir(path: Path) -> Any:  # typeshed's iterator type is private
        listed.append(Path(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)
    transport = httpx.MockTransport(lambda r: httpx.Response(200, content=PNG))
    with ImageDownloader(transport=transport) as downloader:
        for task in range(10):
            saved, _ = downloader.save_all(f"t{task}", four_jobs(), first)
            assert len(saved) == 4
        downloader.save_all("u", four_jobs(), second)
    assert sorted(listed) == [first, second]
    assert not (first / f".t7_3.{gone}.0a1b2c3d.part").exists()  # still cleaned up
    assert len(list(first.glob("t*_*.png"))) == 40


def test_one_pool_of_download_threads_serves_every_task(tmp_path: Path) -> None:
    used: set[int] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        used.add(threading.get_ident())  # the transport runs in the downloading thread
        return httpx.Response(200, content=PNG)

    with ImageDownloader(transport=httpx.MockTransport(handler), threads=2) as downloader:
        for task in range(6):
            saved, missing = downloader.save_all(f"t{task}", four_jobs(), tmp_path)
            assert len(saved) == 4 and missing == []
    assert 1 <= len(used) <= 2
    assert threading.get_ident() not in used
    assert not [t for t in threading.enumerate() if t.name.startswith("soul-dl")]


def test_one_tls_context_for_the_api_client_and_every_image_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A TLS context reads the whole CA bundle (about 20 ms): one per process is enough."""
    made: list[ssl.SSLContext] = []
    create = ssl.create_default_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        context = create(*args, **kwargs)  # type: ignore[arg-type]
        made.append(context)
        return context

    from soulcli import tls

    bundles: list[object] = []
    trust = tls._trust
    monkeypatch.setattr(tls, "_context", None)
    monkeypatch.setattr(tls, "_trusting", False)
    monkeypatch.setattr(tls, "_trust", lambda context: bundles.append(trust(context)))
    monkeypatch.setattr(ssl, "create_default_context", counting)
    with ApiClient("https://api.example", "sk-test"), ImageDownloader(), ImageDownloader():
        pass
    assert made == [] and len(bundles) == 1  # httpx made none of its own; one bundle read
