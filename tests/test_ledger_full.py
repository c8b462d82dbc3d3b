"""A ledger that cannot be written right after a POST: the paid task id is never swallowed."""

from __future__ import annotations

import errno
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from soulcli import journal
from soulcli.fake302 import Fake302
from soulcli.journal import FILENAME as JOURNAL
from soulcli.ledger import TaskRecord
from tests.conftest import run_soul, soul_env


@pytest.fixture
def data_fs(tmpfs: Callable[[str, str], Path]) -> Path:
    """A 2 MiB tmpfs for the ledger (SOUL_DATA_DIR), so that it can really fill up."""
    return tmpfs("data-fs", "size=2m")


def fill(directory: Path) -> Path:
    """Write zeros until the file system says it is full (ENOSPC)."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def rows(data_dir: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(data_dir / "tasks.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM tasks ORDER BY id")]


def test_generate_keeps_the_task_id_when_the_ledger_disk_fills(
    fake: Fake302, data_fs: Path, out_dir: Path
) -> None:
    env = soul_env(fake, SOUL_DATA_DIR=str(data_fs))
    fillers: list[Path] = []
    # The disk fills while the POST is in flight: after the row, before the task id.
    fake.state.on_submit = lambda body: fillers.append(fill(data_fs))
    result = run_soul("generate", "a dog", "-o", str(out_dir), env=env)
    fake.state.on_submit = None
    task_id = next(iter(fake.state.tasks))
    assert result.code == 17, result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("soul: error:")]
    assert f"task {task_id} was submitted and charged (0.1 PTC)" in error
    assert f"soul fetch {task_id} --wait --out {out_dir.resolve()}" in error
    assert "the next soul run records it" in error
    assert task_id.encode() in (data_fs / JOURNAL).read_bytes()

    fillers[0].unlink()  # room again: the next run takes the id back and finishes the task
    history = json.loads(run_soul("history", "--json", env=env).stdout)
    assert [(t["task_id"], t["state"]) for t in history] == [(task_id, "submitted")]
    assert task_id.encode() not in (data_fs / JOURNAL).read_bytes()
    resumed = run_soul("fetch", env=env)
    assert resumed.code == 0, resumed.stderr
    assert len(resumed.lines) == 4 and all(Path(p).is_file() for p in resumed.lines)
    assert rows(data_fs)[0]["state"] == "completed"
    assert fake.post_count() == 1


def test_a_batch_counts_the_charge_and_sends_nothing_more(
    fake: Fake302, data_fs: Path, tmp_path: Path, out_dir: Path
) -> None:
    env = soul_env(fake, SOUL_DATA_DIR=str(data_fs))
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\nthree\n")
    fillers: list[Path] = []
    fake.state.on_submit = lambda body: fillers.append(fill(data_fs)) if not fillers else None
    result = run_soul("batch", str(prompts), "-o", str(out_dir), "-c", "1", env=env)
    fake.state.on_submit = None
    task_id = next(iter(fake.state.tasks))
    assert result.code == 17, result.stderr
    assert fake.post_count() == 1  # the ledger cannot record more: nothing more is sent
    assert "0.1 PTC spent by this run" in result.stderr
    assert "line 1 unrecorded" in result.stderr and task_id in result.stderr
    assert f"soul fetch {task_id} --wait" in result.stderr

    fillers[0].unlink()
    again = run_soul("batch", str(prompts), "-o", str(out_dir), env=env)
    assert again.code == 0, again.stderr
    assert "0 already done, 2 new (0.2 PTC), 1 to resume" in again.stderr
    assert fake.post_count() == 3  # line 1 was resumed, not sent again
    assert len(again.lines) == 12


def test_without_room_for_the_journal_the_id_is_still_printed(
    fake: Fake302, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from soulcli.errors import ConfigError
    from soulcli.ledger import Ledger
    from tests.conftest import invoke

    def cannot_write(self: Ledger, local_id: int, remote_id: str) -> None:
        raise ConfigError("cannot write to the task ledger: database or disk is full")

    def no_room(path: Path, record: dict[str, Any]) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Ledger, "set_remote_id", cannot_write)
    monkeypatch.setattr(journal, "append", no_room)
    env: dict[str, str | None] = {
        "SOUL_BASE_URL": fake.base_url,
        "SOUL_API_KEY": fake.settings.api_key,
    }
    result = invoke("generate", "a dog", "-o", str(out_dir), env=env)
    task_id = next(iter(fake.state.tasks))
    assert result.code == 17
    assert f"task {task_id} was submitted and charged" in result.stderr
    assert "note the id" in result.stderr and f"soul fetch {task_id}" in result.stderr


def test_a_possible_charge_is_still_said_when_the_ledger_cannot_record_it(
    fake: Fake302, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from soulcli.errors import ConfigError
    from soulcli.ledger import Ledger
    from tests.conftest import invoke

    def cannot_write(self: Ledger, *args: object) -> None:
        raise ConfigError("cannot write to the task ledger: database or disk is full")

    monkeypatch.setattr(Ledger, "set_state", cannot_write)
    fake.state.inject("submit", "500")
    env: dict[str, str | None] = {
        "SOUL_BASE_URL": fake.base_url,
        "SOUL_API_KEY": fake.settings.api_key,
    }
    result = invoke("generate", "a dog", "-o", str(out_dir), env=env)
    assert result.code == 10, result.stderr
    assert "may have been charged" in result.stderr
    assert "the task ledger could not record it" in result.stderr


def submitting_row(prompt: str, seed: int) -> tuple[int, Path]:
    """A ledger row written before a POST (no task id yet), and the journal beside it."""
    from soulcli.ledger import Ledger
    from soulcli.request_builder import build_request

    request = build_request(
        prompt, style=None, ar=None, quality=None, seed=seed, negative=None, enhance=None
    )
    with Ledger.open() as ledger:
        row = ledger.add(request, out_dir=None, api_host="x")
        path = ledger.journal
    assert path is not None
    return row, path


def recorded(row: int) -> TaskRecord:
    from soulcli.ledger import Ledger

    with Ledger.open() as ledger:  # opening it folds the journal in
        record = ledger.get(row)
    assert record is not None
    return record


def test_the_journal_folds_only_into_the_row_it_was_written_for(isolated_dirs: Path) -> None:
    row, path = submitting_row("a heron", 42)
    wrong = {"ledger_row": row, "task_id": "higgsfield_other", "seed": 7, "prompt_start": "x"}
    right = {**wrong, "task_id": "higgsfield_right", "seed": 42, "prompt_start": "a heron"}
    journal.append(path, wrong)
    journal.append(path, right)
    record = recorded(row)
    assert (record.remote_id, record.state) == ("higgsfield_right", "submitted")
    kept = path.read_bytes().rstrip(b"\0")
    assert b"higgsfield_other" in kept and b"higgsfield_right" not in kept  # kept, not dropped


def test_a_foreign_journal_record_does_not_stop_the_others(isolated_dirs: Path) -> None:
    row, path = submitting_row("an ibis", 3)
    journal.append(path, {"ledger_row": "not a row", "task_id": "higgsfield_odd"})
    good = {"ledger_row": row, "task_id": "higgsfield_ibis", "seed": 3, "prompt_start": "an ibis"}
    journal.append(path, good)
    assert recorded(row).remote_id == "higgsfield_ibis"
    assert b"higgsfield_odd" in path.read_bytes()


def test_take_over_leaves_a_finished_task_alone(isolated_dirs: Path) -> None:
    from soulcli.ledger import Ledger

    row, _ = submitting_row("a crane", 1)
    with Ledger.open() as ledger:
        ledger.set_remote_id(row, "higgsfield_done")
        assert ledger.take_over(row) is None  # unfinished: now this process's
        ledger.set_results(row, "completed", [])
        standing = ledger.take_over(row)
    assert standing is not None and standing.state == "completed"
