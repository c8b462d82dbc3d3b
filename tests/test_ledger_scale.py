"""The ledger's schema over time and at size: old ledgers migrate whole, listings use indexes,
spend totals are summed by SQLite and count every matching task."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from soulcli.ledger import SCHEMA_VERSION, Ledger, Spend
from soulcli.models import GenerationRequest
from tests.conftest import run_soul

# Made by soul 0.1.0 as of commit 8e752ae (the last with ledger schema 1), installed in
# its own virtual environment and run against its own fake 302.AI: generate (completed,
# partial, failed, --no-wait, a timeout, a 500 on the submit), a 3-line JSON Lines batch,
# and a generate killed with SIGKILL while its submit was held open (left `submitting`).
LEDGER_0_1 = Path(__file__).parent / "data" / "ledger-soul-0.1.sqlite"


def rows(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM tasks ORDER BY id")]


def test_a_ledger_made_by_soul_0_1_is_read_back_whole(isolated_dirs: Path) -> None:
    ledger = isolated_dirs / "data" / "tasks.db"
    ledger.parent.mkdir(parents=True)
    shutil.copy(LEDGER_0_1, ledger)
    before = rows(ledger)
    assert len(before) == 11 and "line_key" not in before[0]  # schema 1, as 0.1 left it

    listed = run_soul("history", "--json", "--limit", "100")
    assert listed.code == 0, listed.stderr
    tasks = {task["id"]: task for task in json.loads(listed.stdout)}
    assert sorted(tasks) == [row["id"] for row in before]
    for row in before:
        task = tasks[row["id"]]
        assert task["created_at"] == datetime.fromtimestamp(row["created_at"], UTC).isoformat()
        assert (task["task_id"], task["prompt"], task["negative_prompt"], task["seed"]) == (
            row["remote_id"],
            row["prompt"],
            row["negative_prompt"],
            row["seed"],
        )
        assert task["style"] == {"id": row["style_id"], "name": row["style_name"]}
        assert (task["aspect_ratio"], task["quality"]) == (row["aspect_ratio"], row["quality"])
        assert task["enhance_prompt"] == bool(row["enhance_prompt"])
        assert Decimal(str(task["cost_ptc"])) == Decimal(row["price_ptc"])
        assert (task["out_dir"], task["images"]) == (row["out_dir"], json.loads(row["images"]))
        batch = {"id": row["batch_id"], "line": row["batch_line"]} if row["batch_id"] else None
        assert task["batch"] == batch
        if row["state"] != "submitting":
            assert (task["state"], task["error"]) == (row["state"], row["error"])
    # The one 0.1 left `submitting` (its process killed) is settled as maybe charged.
    assert tasks[11]["state"] == "outcome_unknown" and tasks[11]["task_id"] is None

    after = rows(ledger)
    for old, new in zip(before, after, strict=True):
        changed = {key for key in old if old[key] != new[key]}
        # Schema 2 keeps a pid only on a row still being submitted; the settled row
        # changed as `history` reported it (and let go of its dead pid).
        allowed = {"pid"} | ({"state", "error", "updated_at"} if old["id"] == 11 else set())
        assert changed <= allowed, (old["id"], changed)
        assert new["pid"] is None
    with sqlite3.connect(ledger) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    with Ledger.open(ledger) as opened:  # the totals kept from the migration on
        assert opened.spend() == Spend(11, Decimal("1.2"), Decimal("0.2"))
        assert opened.spend() == Spend.of(opened.search())

    table = run_soul("history")
    assert table.code == 0 and len(table.lines) == 12
    assert table.stderr == "11 tasks · spent 1.2 PTC (+0.2 PTC possibly charged)\n"
    odd = run_soul("history", "--search", "100% _under_", "--json")
    assert [task["id"] for task in json.loads(odd.stdout)] == [2]
    shown = run_soul("history", "show", "8")
    assert "prompt: batch red kite" in shown.stdout and "image 4: " in shown.stdout
    last = run_soul("fetch", "--last")  # the newest: no task id, maybe charged
    assert last.code == 10 and "task 11 never got a task id" in last.stderr


def add_tasks(ledger: Ledger, count: int, *, start: int = 0) -> None:
    """`count` finished tasks, every third at 1080p, every fifth a failed one."""
    for i in range(start, start + count):
        quality = "1080p" if i % 3 == 0 else "720p"
        request = GenerationRequest(f"task {i} a dog", "id", "GENERAL", "1:1", quality, i)
        row = ledger.add(request, out_dir=None, api_host="h")
        ledger.set_remote_id(row, f"higgsfield_{i:012x}")
        ledger.set_results(row, "failed" if i % 5 == 0 else "completed", [])


LISTINGS: dict[str, Callable[[Ledger], object]] = {
    "history": lambda ledger: ledger.search(limit=50),
    "history --search": lambda ledger: ledger.search(text="dog", limit=50),
    "history --state": lambda ledger: ledger.search(state="failed", limit=50),
    "history --since": lambda ledger: ledger.search(since=0.0, limit=50),
    "fetch --last": lambda ledger: ledger.newest(),
    "spend": lambda ledger: ledger.spend(),
    "spend --search": lambda ledger: ledger.spend(text="dog"),
    "spend --state": lambda ledger: ledger.spend(state="failed"),
    "spend --since": lambda ledger: ledger.spend(since=0.0),
    "a wait's window": lambda ledger: ledger.recent_ends(
        api_host="h", quality="720p", batch_id=None
    ),
    "a batch line's window": lambda ledger: ledger.recent_ends(
        api_host="h", quality="720p", batch_id=1
    ),
}


@pytest.mark.parametrize("listing", sorted(LISTINGS))
def test_listings_and_totals_read_an_index_never_the_whole_table_sorted(
    tmp_path: Path, traced: list[str], listing: str
) -> None:
    """Why a ledger of 100,000 tasks lists as fast as a new one (speed itself is measured
    in benchmarks/run.py): no listing sorts the table, no total reads its rows. Only the
    prompt index's matches may be sorted: what it reads grows with them, not the table."""
    with Ledger.open(tmp_path / "tasks.db") as ledger:
        add_tasks(ledger, 12)
        traced.clear()
        LISTINGS[listing](ledger)
    selects = [sql for sql in traced if sql.lstrip().upper().startswith("SELECT")]
    assert any("FROM tasks" in sql for sql in selects)
    with sqlite3.connect(tmp_path / "tasks.db") as db:
        for sql in selects:
            plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
            for step in plan:
                if "FROM prompt_words" not in sql:
                    assert "TEMP B-TREE FOR ORDER BY" not in step, (sql, plan)
                if step.startswith("SCAN tasks"):  # a whole pass: over an index only
                    assert "COVERING INDEX" in step or "tasks_newest" in step, (sql, plan)


def test_spend_totals_are_exact_and_match_the_rows_they_count(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    with Ledger.open(path) as ledger:
        add_tasks(ledger, 30)
        refused = ledger.add(
            GenerationRequest("a cat refused", "id", "GENERAL", "1:1", "720p", 1),
            out_dir=None,
            api_host="h",
        )
        ledger.set_refused(refused, "the server refused it")  # never charged
        unknown = ledger.add(
            GenerationRequest("a cat maybe", "id", "GENERAL", "1:1", "1080p", 2),
            out_dir=None,
            api_host="h",
        )
        ledger.set_state(unknown, "outcome_unknown", "may have been charged")
    with sqlite3.connect(path) as db:  # a price with more decimals than Soul's own
        db.execute("UPDATE tasks SET price_ptc = '0.025' WHERE id = 3")
    with Ledger.open(path) as ledger:
        everything = ledger.spend()
        assert everything == Spend(32, Decimal("3.925"), Decimal("0.2"))
        for filters in ({}, {"text": "dog"}, {"text": "cat"}, {"state": "failed"}, {"since": 0.0}):
            assert ledger.spend(**filters) == Spend.of(ledger.search(**filters)), filters
        assert ledger.spend(text="nothing like it") == Spend()


def test_the_kept_totals_follow_every_write_whoever_makes_it(tmp_path: Path) -> None:
    """The whole ledger's totals are counts that triggers keep in step with the rows:
    writes by soul, and by plain SQL (an older soul, or a user at the sqlite3 prompt)."""
    path = tmp_path / "tasks.db"
    with Ledger.open(path) as ledger:
        add_tasks(ledger, 10)
        unknown = ledger.add(
            GenerationRequest("a cat maybe", "id", "GENERAL", "1:1", "1080p", 2),
            out_dir=None,
            api_host="h",
        )
        ledger.set_state(unknown, "outcome_unknown", "may have been charged")
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO tasks (created_at, updated_at, prompt, style_id, style_name,"
            " aspect_ratio, quality, seed, price_ptc, remote_id, state) VALUES"
            " (1, 1, 'by hand', 'id', 'GENERAL', '1:1', '720p', 1, '0.025', 'x', 'completed')"
        )
        db.execute("UPDATE tasks SET price_ptc = '0.3' WHERE id = 2")  # was 0.1
        db.execute("UPDATE tasks SET remote_id = NULL, state = 'failed' WHERE id = 3")
        db.execute("DELETE FROM tasks WHERE id = 4")
    with Ledger.open(path) as ledger:
        kept = ledger.spend()
        assert kept == Spend.of(ledger.search())
        # 1.4 for tasks 1-10, + 0.2 for #2 at 0.3, - 0.1 for #3, - 0.2 for #4, + 0.025
        assert kept == Spend(11, Decimal("1.325"), Decimal("0.2"))
        ledger.set_remote_id(unknown, "higgsfield_late")  # known after all: charged
        assert ledger.spend() == Spend(11, Decimal("1.525"), Decimal("0"))


def test_history_totals_count_every_matching_task_not_only_those_shown(
    isolated_dirs: Path,
) -> None:
    with Ledger.open() as ledger:
        add_tasks(ledger, 60)
    shown = run_soul("history", "--limit", "5")
    assert shown.code == 0 and len(shown.lines) == 6  # the header and 5 tasks
    assert shown.lines[1].split()[0] == "60"  # the newest first
    assert shown.stderr == "60 tasks · spent 8 PTC · the newest 5 shown\n"
    failed = run_soul("history", "--state", "failed", "-n", "3")
    assert failed.stderr == "12 tasks · spent 1.6 PTC · the newest 3 shown\n"
    searched = run_soul("history", "--search", "task 1", "-n", "50")
    # task 1, task 10-19: all shown, so the rows themselves give the totals
    assert searched.stderr == "11 tasks · spent 1.4 PTC\n"
    as_json = json.loads(run_soul("history", "--json", "-n", "7").stdout)
    assert [task["id"] for task in as_json] == list(range(60, 53, -1))
