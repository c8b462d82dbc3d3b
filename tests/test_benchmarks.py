"""The benchmark script still runs (its figures are not asserted: speed is not a test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_networked_start_and_waiting_sections_run(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--only",
            "netstart,waiting",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    names = [figure["name"] for figure in json.loads(out.read_text())]
    for name in (
        "soul generate --no-wait / soul generate --dry-run",
        "soul fetch --last (images on disk) / soul history --json",
        "soul fetch --last: imports",
        "soul generate 'a dog' --no-wait: TLS contexts, CA bundle reads",
        "T=3.5s, first task: completion -> exit, less the download",
        "T=3.5s, after 3 similar: completion -> exit, less the download",
        "T=3.5s, after 3 similar: polls (median, most)",
    ):
        assert name in names, names
