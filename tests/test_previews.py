"""The `min` preview is for a server-side problem with the full image, never for a full disk."""

from __future__ import annotations

import json
import resource
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from soulcli.fake302 import Fake302
from tests.conftest import SOUL, Result, assert_clean_output, run_soul, soul_env

FULL_SIZE = 320 * 1024


def ledger_images(isolated_dirs: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(isolated_dirs / "data" / "tasks.db") as db:
        row = db.execute("SELECT state, images FROM tasks ORDER BY id DESC").fetchone()
    return [{"state": row[0], **image} for image in json.loads(row[1])]


def run_with_file_size_limit(limit: int, *args: str, fake: Fake302) -> Result:
    """Run soul with RLIMIT_FSIZE set: writing a bigger file fails with EFBIG, as a full disk."""

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [str(SOUL), *args],
        capture_output=True,
        env=soul_env(fake),
        preexec_fn=limit_files,
        timeout=60,
        check=False,
    )
    result = Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
    assert_clean_output(result)
    return result


def test_a_local_write_error_is_a_download_failure_not_a_preview(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    fake.settings.image_size = FULL_SIZE
    out_dir.mkdir()
    # No file may reach an image's size; the ledger's write-ahead log (between 200 and
    # 256 KB by the end of this run, with schema 5's indexes) stays below it.
    failed = run_with_file_size_limit(
        FULL_SIZE - 1, "generate", "a dog", "--json", "-o", str(out_dir), fake=fake
    )
    assert failed.code == 14, failed.stderr
    assert "File too large" in failed.stderr and "soul fetch" in failed.stderr
    assert json.loads(failed.stdout)["images"] == []
    assert not any(r.path.endswith("/min.png") for r in fake.requests(server="images"))
    assert list(out_dir.glob("*.png")) == [] and list(out_dir.glob(".*")) == []
    assert {image["state"] for image in ledger_images(isolated_dirs)} == {"submitted"}
    resumed = run_soul("fetch", "--json", fake=fake)  # room again: the full images arrive
    assert resumed.code == 0, resumed.stderr
    images = json.loads(resumed.stdout)["images"]
    assert [image["variant"] for image in images] == ["raw"] * 4
    assert [Path(image["path"]).stat().st_size for image in images] == [FULL_SIZE] * 4
    assert fake.post_count() == 1


@pytest.fixture
def small_fs(tmpfs: Callable[[str, str], Path]) -> Path:
    """A 320 KiB tmpfs: one full image fits, four do not (a real ENOSPC)."""
    return tmpfs("small", "size=320k")


def test_a_full_disk_never_saves_previews_and_fetch_finishes_later(
    fake: Fake302, isolated_dirs: Path, small_fs: Path
) -> None:
    fake.settings.image_size = FULL_SIZE
    failed = run_soul("generate", "a dog", "--json", "-o", str(small_fs), fake=fake)
    assert failed.code == 14, failed.stderr
    assert "No space left" in failed.stderr
    saved = json.loads(failed.stdout)["images"]
    assert all(image["variant"] == "raw" for image in saved)
    assert all(p.stat().st_size == FULL_SIZE for p in small_fs.glob("*.png"))
    assert not any(r.path.endswith("/min.png") for r in fake.requests(server="images"))
    assert ledger_images(isolated_dirs)[0]["state"] == "submitted"
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_fs)], check=True)
    resumed = run_soul("fetch", fake=fake)
    assert resumed.code == 0, resumed.stderr
    assert sorted(p.stat().st_size for p in small_fs.glob("*.png")) == [FULL_SIZE] * 4
    assert fake.post_count() == 1


def test_a_preview_is_said_recorded_and_replaced_by_fetch(
    fake: Fake302, isolated_dirs: Path, out_dir: Path
) -> None:
    fake.settings.image_size = FULL_SIZE
    fake.settings.outcomes = ["completed"]
    fake.state.inject("image", "404")  # the full image is missing on the image host
    first = run_soul("generate", "a dog", "--json", "-o", str(out_dir), fake=fake)
    assert first.code == 0, first.stderr
    [image] = json.loads(first.stdout)["images"]
    assert image["variant"] == "min" and image["url"].endswith("/min.png")
    assert "image 1 is the smaller preview" in first.stderr and "404" in first.stderr
    task_id = json.loads(first.stdout)["task_id"]
    assert f"soul fetch {task_id} --out {out_dir.resolve()}" in first.stderr
    assert ledger_images(isolated_dirs)[0]["variant"] == "min"
    preview = Path(image["path"])
    assert preview.stat().st_size < FULL_SIZE
    shown = run_soul("history", "show", "1", fake=fake)
    assert "smaller preview" in shown.stdout

    replaced = run_soul("fetch", task_id, "--out", str(out_dir), "--json", fake=fake)
    assert replaced.code == 0, replaced.stderr
    [full] = json.loads(replaced.stdout)["images"]
    assert full["variant"] == "raw" and full["path"] == str(preview)
    assert preview.stat().st_size == FULL_SIZE
    assert sorted(p.name for p in out_dir.iterdir()) == [f"{task_id}_1.json", f"{task_id}_1.png"]
    assert ledger_images(isolated_dirs)[0]["variant"] == "raw"
    assert fake.post_count() == 1
