"""The prompt index finds what a LIKE scan finds, adds up the same totals, follows every
write, and steps aside (then comes back whole) where SQLite cannot keep it."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from soulcli import ledger as ledger_module
from soulcli import prompt_index
from soulcli.ledger import Ledger, Spend, TaskRecord
from soulcli.models import GenerationRequest
from tests.conftest import run_soul

PROMPTS = [
    "A Dog in the rain",
    "a DOG on a kite",
    "Café au lait",
    "CAFÉ AU LAIT",
    'say "cheese" to the dog',
    "100% _under_ cover",
    "back\\slash and 50%",
    "émoji 🐕 dog",
    "straße bei nacht",
    "STRASSE BEI NACHT",
    "dOg",
    "do",
    "lighthouse at dusk",
    "a very long prompt: a lighthouse at dusk, gulls, rain on the glass, film grain",
]
TEXTS = [
    "dog",
    "DOG",
    "Dog in",
    "café",
    "CAFÉ",
    "Café",
    '"cheese"',
    "100%",
    "_under",
    "% _",
    "\\sla",
    "🐕 d",
    "straße",
    "STRASSE",
    "do",
    "og",
    "a d",
    "zzz",
    "higgsfield_000000000003",  # a task id: its task, whatever its prompt
    "a lighthouse at dusk, gulls, rain on the glass",  # longer than the index looks up
    "a very long prompt: a lighthouse at dusk",  # 40 characters: the longest it does
]


def like(text: str, prompt: str) -> bool:
    """LIKE '%text%' as SQLite reads it: ASCII letters in either case, the rest exactly."""
    fold = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
    return text.translate(fold) in prompt.translate(fold)


def expected(records: list[TaskRecord], text: str) -> list[int]:
    return [r.id for r in records if like(text, r.prompt) or r.remote_id == text]


def add_prompts(ledger: Ledger, prompts: list[str]) -> None:
    for i, prompt in enumerate(prompts):
        quality = "1080p" if i % 3 == 0 else "720p"
        row = ledger.add(
            GenerationRequest(prompt, "id", "GENERAL", "1:1", quality, i),
            out_dir=None,
            api_host="h",
        )
        if i % 4 == 3:
            ledger.set_state(row, "outcome_unknown", "may have been charged")
            continue
        ledger.set_remote_id(row, f"higgsfield_{row:012x}")
        ledger.set_results(row, "failed" if i % 5 == 0 else "completed", [])


def used_the_index(statements: list[str]) -> bool:
    return any("MATCH" in sql and "FROM prompt_words" in sql for sql in statements)


@pytest.mark.parametrize("newest_scanned", [1, 3, 2000])
def test_the_index_finds_what_like_finds_and_totals_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, traced: list[str], newest_scanned: int
) -> None:
    """Every search, through the index or the scan of the newest tasks (as the page size
    and how many newest tasks are scanned send it), lists and totals what LIKE would."""
    monkeypatch.setattr(ledger_module, "NEWEST_SCANNED", newest_scanned)
    with Ledger.open(tmp_path / "tasks.db") as ledger:
        add_prompts(ledger, PROMPTS)
        everything = ledger.search()
        traced.clear()
        for text in TEXTS:
            wanted = expected(everything, text)
            assert [r.id for r in ledger.search(text=text)] == wanted, text
            for limit in (1, 2, 5):
                found = [r.id for r in ledger.search(text=text, limit=limit)]
                assert found == wanted[:limit], (text, limit)
            assert [r.id for r in ledger.search(text=text, limit=-1)] == wanted  # SQL's
            matching = [r for r in everything if r.id in wanted]
            assert ledger.spend(text=text) == Spend.of(matching), text
            failed = [r for r in matching if r.state == "failed"]
            assert [r.id for r in ledger.search(text=text, state="failed")] == [
                r.id for r in failed
            ]
            assert ledger.spend(text=text, state="failed") == Spend.of(failed), text
            later = everything[len(everything) // 2].created_at
            recent = [r for r in matching if r.created_at >= later]
            assert ledger.spend(text=text, since=later) == Spend.of(recent), text
            assert [r.id for r in ledger.search(text=text, since=later)] == [r.id for r in recent]
    assert used_the_index(traced)


def test_a_text_with_nul_is_searched_as_like_searches_it(tmp_path: Path) -> None:
    """NUL ends an FTS5 query (an error), and SQLite's LIKE reads a pattern only up to
    it: such a text (the library can be given one) gets LIKE's answer, as it always did."""
    with Ledger.open(tmp_path / "tasks.db") as ledger:
        add_prompts(ledger, [*PROMPTS, "a kite over the hill"])
        db = sqlite3.connect(tmp_path / "tasks.db")
        for text in ("l\0in", "dog\0", "\0"):
            pattern = f"%{text}%"
            rows = db.execute(
                "SELECT id FROM tasks WHERE prompt LIKE ? ORDER BY id DESC", (pattern,)
            )
            assert [r.id for r in ledger.search(text=text)] == [row[0] for row in rows], text
        db.close()


def test_the_index_follows_every_write_whoever_makes_it(tmp_path: Path) -> None:
    """Triggers keep the index in step with rows written by soul and by plain SQL (an
    older soul, or a user at the sqlite3 prompt): new rows, changed prompts, prices and
    states, and deleted rows."""
    path = tmp_path / "tasks.db"
    with Ledger.open(path) as ledger:
        add_prompts(ledger, PROMPTS)
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO tasks (created_at, updated_at, prompt, style_id, style_name,"
            " aspect_ratio, quality, seed, price_ptc, remote_id, state) VALUES"
            " (9e9, 1, 'a dog by hand', 'id', 'GENERAL', '1:1', '720p', 1, '0.025', 'x',"
            " 'completed')"
        )
        db.execute("UPDATE tasks SET prompt = 'now a cat' WHERE id = 1")  # was A Dog
        db.execute("UPDATE tasks SET prompt = 'a dog after all' WHERE id = 13")
        db.execute("UPDATE tasks SET price_ptc = '0.3' WHERE id = 2")
        db.execute("UPDATE tasks SET remote_id = NULL, state = 'failed' WHERE id = 5")
        db.execute("UPDATE tasks SET remote_id = 'late', state = 'submitted' WHERE id = 4")
        db.execute("DELETE FROM tasks WHERE id = 8")
    with Ledger.open(path) as ledger:
        everything = ledger.search()
        for text in ("dog", "cat", "DOG", "lait", "late"):
            wanted = expected(everything, text)
            assert [r.id for r in ledger.search(text=text)] == wanted, text
            assert [r.id for r in ledger.search(text=text, limit=2)] == wanted[:2], text
            matching = [r for r in everything if r.id in wanted]
            assert ledger.spend(text=text) == Spend.of(matching), text
        assert ledger.search(text="dog", limit=1)[0].prompt == "a dog by hand"
        assert ledger.search(text="late")[0].id == 4  # charged now, found by its task id


def test_a_sqlite_without_the_tokenizer_searches_by_scan_and_a_capable_one_rebuilds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, traced: list[str]
) -> None:
    path = tmp_path / "tasks.db"
    with Ledger.open(path) as ledger:
        add_prompts(ledger, PROMPTS[:4])
    monkeypatch.setattr(prompt_index, "supported", lambda connection: False)
    with Ledger.open(path) as ledger:  # the triggers go, so rows can still be added
        add_prompts(ledger, ["a dog added meanwhile", "a cat added meanwhile"])
        traced.clear()
        assert [r.prompt for r in ledger.search(text="meanwhile")] == [
            "a cat added meanwhile",
            "a dog added meanwhile",
        ]
        assert not used_the_index(traced)
    with sqlite3.connect(path) as db:
        assert not prompt_index.triggers_present(db)
    monkeypatch.undo()
    with Ledger.open(path) as ledger:  # built again, whole, with the rows added meanwhile
        everything = ledger.search()
        for text in ("dog", "meanwhile", "CAFÉ"):
            assert [r.id for r in ledger.search(text=text)] == expected(everything, text)
            matching = [r for r in everything if r.id in expected(everything, text)]
            assert ledger.spend(text=text) == Spend.of(matching)
    with sqlite3.connect(path) as db:
        assert prompt_index.triggers_present(db) == set(prompt_index.TRIGGERS)
        counted = db.execute("SELECT count(*) FROM task_costs").fetchone()[0]
        assert counted == len(everything)


def test_a_tokenizer_that_will_not_load_leaves_the_ledger_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = prompt_index.BUILD.replace("trigram case_sensitive 1", "no_such_tokenizer")
    monkeypatch.setattr(prompt_index, "BUILD", broken)
    with Ledger.open(tmp_path / "tasks.db") as ledger:
        add_prompts(ledger, PROMPTS)
        assert [r.prompt for r in ledger.search(text="dog", limit=2)] == ["dOg", "émoji 🐕 dog"]
    with sqlite3.connect(tmp_path / "tasks.db") as db:
        assert not prompt_index.triggers_present(db)


def test_four_openers_at_once_of_a_ledger_without_the_index_build_it_once(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    with Ledger.open(path) as ledger:
        add_prompts(ledger, PROMPTS)
    with sqlite3.connect(path) as db:  # as a ledger from before the index looks
        prompt_index.drop_triggers(db)
        db.execute("DROP TABLE prompt_words")
        db.execute("DROP TABLE task_costs")
    errors: list[BaseException] = []
    found: list[list[int]] = []

    def search() -> None:
        try:
            with Ledger.open(path) as ledger:
                found.append([r.id for r in ledger.search(text="dog")])
        except BaseException as exc:  # reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with Ledger.open(path) as ledger:
        wanted = expected(ledger.search(), "dog")
    assert found == [wanted] * 4
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM task_costs").fetchone()[0] == len(PROMPTS)


def test_history_search_on_a_ledger_larger_than_the_newest_scan(isolated_dirs: Path) -> None:
    """Through the CLI, on 3,000 tasks: a word only old tasks hold (found by the index)
    and one most hold (found among the newest), each with the totals of every match."""
    path = isolated_dirs / "data" / "tasks.db"
    path.parent.mkdir(parents=True)
    with Ledger.open(path):
        pass
    with sqlite3.connect(path) as db:
        for i in range(3000):
            word = "lighthouse" if i < 40 else "dog"
            db.execute(
                "INSERT INTO tasks (created_at, updated_at, prompt, style_id, style_name,"
                " aspect_ratio, quality, seed, price_ptc, remote_id, state) VALUES"
                " (?, ?, ?, 'id', 'GENERAL', '1:1', '720p', ?, ?, ?, 'completed')",
                (1e9 + i, 1e9 + i, f"task {i} a {word}", i, "0.1" if i % 2 else "0.2", f"t{i}"),
            )
    old = run_soul("history", "--search", "LIGHTHOUSE", "-n", "5")
    assert old.code == 0, old.stderr
    assert [line.split()[0] for line in old.lines[1:]] == ["40", "39", "38", "37", "36"]
    assert old.stderr == "40 tasks · spent 6 PTC · the newest 5 shown\n"
    many = run_soul("history", "--search", "dog", "-n", "3", "--json")
    assert [task["prompt"] for task in json.loads(many.stdout)] == [
        "task 2999 a dog",
        "task 2998 a dog",
        "task 2997 a dog",
    ]
    totals = run_soul("history", "--search", "a dog", "-n", "1")
    assert totals.stderr == "2960 tasks · spent 444 PTC · the newest 1 shown\n"
    by_id = run_soul("history", "--search", "t777", "--json")
    assert [task["id"] for task in json.loads(by_id.stdout)] == [778]
