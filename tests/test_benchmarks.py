"""The benchmark script still runs (its figures are not asserted: speed is not a test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_script_runs_and_reports_targets(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--only",
            "startup",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert "soul styles --search y2k / bare app command" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert out.is_file() and "httpx imported" in out.read_text()


@pytest.mark.parametrize(
    ("section", "figures"),
    [
        (
            "bigbatch",
            [
                "0 files in the folder: CPU per task",
                "20000 files in the folder: wall / ideal 4 s",
                "CPU per task, 20000 files / 0 files",
                "baseline 20000 files in the folder: CPU per task",
                "20000 files: CPU per task, this / baseline",
            ],
        ),
        (
            "ledger",
            [
                "history: 2000 / 1",
                "history --search dog: 2000 / 1",
                "history --search (63 characters): 2000 / 1",
                "fetch --last (saved)",
                "first open builds the prompt index",
            ],
        ),
        (
            "netstart,waiting",
            [
                "soul generate --no-wait / soul generate --dry-run",
                "soul generate --no-wait: this / baseline",
                "soul fetch --last (images on disk) / soul history --json",
                "soul fetch --last: imports",
                "soul generate 'a dog' --no-wait: TLS contexts, CA bundle reads",
                "T=3.5s, first task: completion -> exit, less the download",
                "T=3.5s, after 3 similar: completion -> exit, less the download",
                "T=3.5s, after 3 similar: polls (median, most)",
            ],
        ),
        (
            "gallery",
            [
                "first build, 50 tasks / 200 images",
                "rebuild after one new task (4 new thumbnails)",
            ],
        ),
    ],
)
def test_benchmark_sections_run_and_report_targets(
    tmp_path: Path, section: str, figures: list[str]
) -> None:
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--only",
            section,
            "--json",
            str(out),
            # The installed soul stands in for another install: both run side by side.
            "--baseline",
            str(Path(sys.executable).parent / "soul"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    names = [figure["name"] for figure in json.loads(out.read_text())]
    for figure in figures:
        assert any(name.startswith(figure) for name in names), (figure, names)
    assert all(figure["value"] for figure in json.loads(out.read_text()))
