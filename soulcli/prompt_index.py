"""The ledger's prompt index: a trigram full-text table of the prompts and each task's cost
beside it, kept in step with `tasks` by triggers, so a search reads only what matches.

It is not a numbered migration because it needs SQLite's FTS5 with the trigram tokenizer
(SQLite 3.34), which a Python may lack; a ledger is also shared by every soul and Python
that opens it. So each open checks it: a SQLite that has the tokenizer builds the index
when its triggers are missing, and one that lacks it drops them (an insert into `tasks`
would otherwise fail on the unknown tokenizer) and searches with LIKE. The next open by
a capable SQLite finds no triggers and builds it again, whole.

Triggers see every INSERT, UPDATE and DELETE, but not the rows a REPLACE removes to
make room (soul never writes one; the `spend` counts share the blind spot). Dropping
any of the triggers makes the next open rebuild the index from the rows.
"""

from __future__ import annotations

import sqlite3

WORDS = "prompt_words"
COSTS = "task_costs"
TRIGGERS = ("prompt_index_added", "prompt_index_prompt", "prompt_index_cost", "prompt_index_gone")
# The trigram tokenizer matches any run of 3 or more characters; a shorter text
# matches nothing through it, so it is searched with LIKE. A phrase costs more with
# every trigram, each of whose positions must line up: past about 40 characters a
# LIKE scan of every prompt is the cheaper way (a whole prompt pasted to find it).
SHORTEST = 3
LONGEST = 40

# What a `tasks` row ({row}) adds to a total, in whole millionths of a PTC: exact for
# prices of up to six decimals (round() takes away the float error of reading the
# text), and summed with no sort by price. Charged: the server took it; maybe: it
# may have, with no task id to show for it.
_MICRO = "CAST(round({row}.price_ptc * 1000000) AS INTEGER)"
CHARGED = f"({{row}}.remote_id IS NOT NULL) * {_MICRO}"
MAYBE = f"({{row}}.remote_id IS NULL AND {{row}}.state = 'outcome_unknown') * {_MICRO}"


def _cost_row(row: str) -> str:
    """The values of a task_costs row for the `tasks` row `row` (NEW, OLD or tasks)."""
    return (
        f"{row}.id, {row}.created_at, {row}.state,"
        f" {CHARGED.format(row=row)}, {MAYBE.format(row=row)}"
    )


# Prompts are indexed lower-cased by SQLite's ASCII-only lower() and matched case by
# case, which is exactly LIKE's rule (ASCII letters in either case, anything else as
# it is): the index and a LIKE scan of the newest tasks always agree. The table is
# contentless (the prompts stay only in `tasks`), so removing a row repeats its text.
BUILD = f"""
DROP TABLE IF EXISTS {WORDS};
DROP TABLE IF EXISTS {COSTS};
CREATE VIRTUAL TABLE {WORDS} USING fts5(
    prompt, content='', tokenize='trigram case_sensitive 1'
);
CREATE TABLE {COSTS} (
    id            INTEGER PRIMARY KEY,
    created_at    REAL    NOT NULL,
    state         TEXT    NOT NULL,
    charged_micro INTEGER NOT NULL,
    maybe_micro   INTEGER NOT NULL
);
INSERT INTO {WORDS} (rowid, prompt) SELECT id, lower(prompt) FROM tasks;
INSERT INTO {WORDS} ({WORDS}) VALUES ('optimize');
INSERT INTO {COSTS} SELECT {_cost_row("tasks")} FROM tasks;
CREATE TRIGGER {TRIGGERS[0]} AFTER INSERT ON tasks BEGIN
    INSERT INTO {WORDS} (rowid, prompt) VALUES (NEW.id, lower(NEW.prompt));
    INSERT INTO {COSTS} VALUES ({_cost_row("NEW")});
END;
CREATE TRIGGER {TRIGGERS[1]} AFTER UPDATE OF id, prompt ON tasks BEGIN
    INSERT INTO {WORDS} ({WORDS}, rowid, prompt) VALUES ('delete', OLD.id, lower(OLD.prompt));
    INSERT INTO {WORDS} (rowid, prompt) VALUES (NEW.id, lower(NEW.prompt));
END;
CREATE TRIGGER {TRIGGERS[2]}
    AFTER UPDATE OF id, created_at, state, remote_id, price_ptc ON tasks BEGIN
    DELETE FROM {COSTS} WHERE id = OLD.id;
    INSERT INTO {COSTS} VALUES ({_cost_row("NEW")});
END;
CREATE TRIGGER {TRIGGERS[3]} AFTER DELETE ON tasks BEGIN
    INSERT INTO {WORDS} ({WORDS}, rowid, prompt) VALUES ('delete', OLD.id, lower(OLD.prompt));
    DELETE FROM {COSTS} WHERE id = OLD.id;
END;
"""


def supported(connection: sqlite3.Connection) -> bool:
    """Whether this SQLite has FTS5 and its trigram tokenizer with case_sensitive."""
    if sqlite3.sqlite_version_info < (3, 34, 0):
        return False
    row = connection.execute("SELECT sqlite_compileoption_used('ENABLE_FTS5')").fetchone()
    return bool(row[0])


def triggers_present(connection: sqlite3.Connection) -> set[str]:
    marks = ",".join("?" * len(TRIGGERS))
    rows = connection.execute(
        f"SELECT name FROM sqlite_master WHERE type = 'trigger' AND name IN ({marks})", TRIGGERS
    )
    return {name for (name,) in rows}


def drop_triggers(connection: sqlite3.Connection) -> None:
    """Stop keeping the index (this SQLite cannot); a capable one rebuilds it later."""
    for name in TRIGGERS:
        connection.execute(f"DROP TRIGGER IF EXISTS {name}")


def can_search(text: str) -> bool:
    """Whether the index can look `text` up (else LIKE, which finds the same tasks)."""
    return SHORTEST <= len(text) <= LONGEST and "\0" not in text  # NUL ends FTS5's query


def phrase(text: str) -> str:
    """A MATCH expression for `text` anywhere in a prompt, as LIKE '%text%' would find it."""
    lowered = text.translate(_ASCII_LOWER)
    return '"' + lowered.replace('"', '""') + '"'


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
