"""The local task ledger: one SQLite row per submission, written before anything is sent.

302.AI has no endpoint that lists past tasks, so this file is the only record of
what the user paid for. Rows are written in WAL mode with synchronous=FULL, so two
soul processes at once or a kill -9 at any moment leave it intact. The API key is
never stored here.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from soulcli import prompt_index
from soulcli.errors import ConfigError
from soulcli.models import GenerationRequest, valid_task_id
from soulcli.paths import ledger_path
from soulcli.process import Owner, me

SCHEMA_VERSION = 5
# How many of the newest tasks a search with a limit looks through before it asks the
# prompt index (about 0.4 ms of scanning).
NEWEST_SCANNED = 2000

SUBMITTING = "submitting"
SUBMITTED = "submitted"
COMPLETED = "completed"
PARTIAL = "partial"
FAILED = "failed"
TIMED_OUT = "timed_out"
OUTCOME_UNKNOWN = "outcome_unknown"
STATES = (SUBMITTING, SUBMITTED, COMPLETED, PARTIAL, FAILED, TIMED_OUT, OUTCOME_UNKNOWN)
# States a task can be resumed from: it has a remote id and soul has not finished with it.
UNFINISHED = (SUBMITTED, TIMED_OUT)
FINAL = (COMPLETED, PARTIAL, FAILED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at      REAL    NOT NULL,
    updated_at      REAL    NOT NULL,
    prompt          TEXT    NOT NULL,
    negative_prompt TEXT    NOT NULL DEFAULT '',
    style_id        TEXT    NOT NULL,
    style_name      TEXT    NOT NULL,
    aspect_ratio    TEXT    NOT NULL,
    quality         TEXT    NOT NULL,
    seed            INTEGER NOT NULL,
    enhance_prompt  INTEGER NOT NULL DEFAULT 0,
    price_ptc       TEXT    NOT NULL,
    api_host        TEXT    NOT NULL DEFAULT '',
    out_dir         TEXT,
    remote_id       TEXT,
    state           TEXT    NOT NULL,
    images          TEXT    NOT NULL DEFAULT '[]',
    error           TEXT,
    pid             INTEGER,
    batch_id        INTEGER,
    batch_line      INTEGER,
    image_stem      TEXT
);
CREATE INDEX IF NOT EXISTS tasks_remote_id ON tasks (remote_id);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state);
CREATE INDEX IF NOT EXISTS tasks_batch ON tasks (batch_id, batch_line);
CREATE TABLE IF NOT EXISTS batches (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT    NOT NULL UNIQUE,
    source      TEXT    NOT NULL,
    created_at  REAL    NOT NULL,
    lines       INTEGER NOT NULL
);
"""


def _count(row: str, sign: str) -> str:
    """Trigger steps that add a row (`NEW`, `+`) to the spend counts or take it out (`OLD`, `-`)."""
    new_price = (
        f"INSERT INTO spend (price_ptc) SELECT {row}.price_ptc"
        f" WHERE NOT EXISTS (SELECT 1 FROM spend WHERE price_ptc = {row}.price_ptc);"
    )
    return (new_price if sign == "+" else "") + (
        f" UPDATE spend SET tasks = tasks {sign} 1,"
        f" charged = charged {sign} ({row}.remote_id IS NOT NULL),"
        f" maybe = maybe {sign} ({row}.remote_id IS NULL AND {row}.state = '{OUTCOME_UNKNOWN}')"
        f" WHERE price_ptc = {row}.price_ptc;"
    )


# Each step takes a ledger from the version before it to its own; rows are never dropped.
_MIGRATIONS: dict[int, str] = {
    1: _SCHEMA,
    # A batch line's identity (its resolved request and which repeat of it it is) and a
    # claim on it: at most one unreleased row per line, enforced by a unique index, so
    # two processes cannot both submit it. `pid_started` tells a reused pid apart.
    # soul 0.1 kept the pid on every row, but only a row still being submitted needs
    # it: a pid reused since would otherwise look like a soul process holding a task.
    # (No comments inside: the steps are split on semicolons.)
    2: """
    ALTER TABLE tasks ADD COLUMN line_key TEXT;
    ALTER TABLE tasks ADD COLUMN claim_released INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN pid_started INTEGER;
    CREATE INDEX IF NOT EXISTS tasks_line_key ON tasks (line_key);
    CREATE UNIQUE INDEX IF NOT EXISTS tasks_line_claim ON tasks (line_key)
        WHERE line_key IS NOT NULL AND claim_released = 0;
    UPDATE tasks SET pid = NULL WHERE state <> 'submitting';
    """,
    # When each task was seen to end, in seconds after its submit was answered (a task
    # taken up later: after its row was made): it was still running `done_after` and
    # had finished `done_by`. The next similar task is polled densely around these
    # times (waiting.py); polls are always sent, so these only make them fewer and
    # better placed.
    3: """
    ALTER TABLE tasks ADD COLUMN done_after REAL;
    ALTER TABLE tasks ADD COLUMN done_by REAL;
    """,
    # Every listing is newest first (`created_at DESC, id DESC`), which without an
    # index meant reading and sorting the whole table (226 ms at 100,000 rows).
    # tasks_newest also holds what a search reads and what a filtered total adds up,
    # so neither opens the rows (each carries its images' JSON). tasks_state_newest
    # lists one state newest first and replaces tasks_state, its prefix. `spend`
    # keeps the whole ledger's totals, by price, as counts the triggers below keep
    # in step with every insert, change and delete in the same transaction, whoever
    # makes it (an older soul too): `soul history` reads a few rows instead of adding
    # up every task. A changed row counts as removed, then added.
    4: f"""
    CREATE INDEX IF NOT EXISTS tasks_newest
        ON tasks (created_at, id, prompt, remote_id, state, price_ptc);
    DROP INDEX IF EXISTS tasks_state;
    CREATE INDEX IF NOT EXISTS tasks_state_newest ON tasks (state, created_at, id);
    CREATE TABLE IF NOT EXISTS spend (
        price_ptc TEXT    PRIMARY KEY,
        tasks     INTEGER NOT NULL DEFAULT 0,
        charged   INTEGER NOT NULL DEFAULT 0,
        maybe     INTEGER NOT NULL DEFAULT 0
    );
    DELETE FROM spend;
    INSERT INTO spend (price_ptc, tasks, charged, maybe)
        SELECT price_ptc, count(*), count(remote_id),
            sum(remote_id IS NULL AND state = '{OUTCOME_UNKNOWN}')
        FROM tasks GROUP BY price_ptc;
    CREATE TRIGGER IF NOT EXISTS spend_added AFTER INSERT ON tasks BEGIN
        {_count("NEW", "+")}
    END;
    CREATE TRIGGER IF NOT EXISTS spend_changed
        AFTER UPDATE OF price_ptc, remote_id, state ON tasks BEGIN
        {_count("OLD", "-")}
        {_count("NEW", "+")}
    END;
    CREATE TRIGGER IF NOT EXISTS spend_removed AFTER DELETE ON tasks BEGIN
        {_count("OLD", "-")}
    END;
    """,
    # Each wait reads when the newest similar tasks ended (`recent_ends`): without an
    # index, a scan and sort of the whole table, 18 ms at 100,000 rows for every task
    # of a batch. Only rows with an end are indexed: one index for a batch's own
    # tasks, one for all of a host and quality's, each newest first.
    5: """
    CREATE INDEX IF NOT EXISTS tasks_done_in_batch
        ON tasks (api_host, quality, batch_id, id) WHERE done_by IS NOT NULL;
    CREATE INDEX IF NOT EXISTS tasks_done_newest
        ON tasks (api_host, quality, id) WHERE done_by IS NOT NULL;
    """,
}


class AlreadyClaimed(Exception):
    """Another row already holds this batch line: it was, or is being, submitted."""

    def __init__(self, record: TaskRecord) -> None:
        super().__init__(f"line already claimed by task {record.id}")
        self.record = record


@dataclass
class TaskRecord:
    """One ledger row."""

    id: int
    created_at: float
    updated_at: float
    prompt: str
    negative_prompt: str
    style_id: str
    style_name: str
    aspect_ratio: str
    quality: str
    seed: int
    enhance_prompt: bool
    price_ptc: Decimal
    api_host: str
    out_dir: str | None
    remote_id: str | None
    state: str
    images: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    batch_id: int | None = None
    batch_line: int | None = None
    image_stem: str | None = None
    line_key: str | None = None
    owner: Owner | None = None  # the soul process working on it, if one is

    @property
    def held_elsewhere(self) -> bool:
        """Whether another soul process that still runs is working on this task."""
        return self.owner is not None and not self.owner.is_me and self.owner.alive

    @property
    def saved_paths(self) -> list[str]:
        return [str(i["path"]) for i in self.images if i.get("path")]

    def previews_in(self, out_dir: Path) -> dict[int, Path]:
        """Images saved as the smaller preview in `out_dir`, by index (a fetch replaces them)."""
        return {
            int(image["index"]): Path(image["path"])
            for image in self.images
            if image.get("variant") == "min"
            and image.get("path")
            and Path(image["path"]).parent == out_dir
        }

    @property
    def charged(self) -> bool:
        """Whether this row counts as spend: the server took it (or may have)."""
        return self.remote_id is not None or self.state == OUTCOME_UNKNOWN

    def request(self) -> GenerationRequest:
        return GenerationRequest(
            prompt=self.prompt,
            style_id=self.style_id,
            style_name=self.style_name,
            aspect_ratio=self.aspect_ratio,
            quality=self.quality,
            seed=self.seed,
            negative_prompt=self.negative_prompt,
            enhance_prompt=self.enhance_prompt,
        )

    def to_json(self) -> dict[str, Any]:
        from datetime import UTC, datetime

        return {
            "id": self.id,
            "created_at": datetime.fromtimestamp(self.created_at, UTC).isoformat(),
            "state": self.state,
            "task_id": self.remote_id,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "style": {"id": self.style_id, "name": self.style_name},
            "aspect_ratio": self.aspect_ratio,
            "quality": self.quality,
            "seed": self.seed,
            "enhance_prompt": self.enhance_prompt,
            "cost_ptc": float(self.price_ptc),
            "out_dir": self.out_dir,
            "images": self.images,
            "error": self.error,
            "batch": {"id": self.batch_id, "line": self.batch_line} if self.batch_id else None,
        }


def _record(row: sqlite3.Row) -> TaskRecord:
    return TaskRecord(
        id=row["id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        prompt=row["prompt"],
        negative_prompt=row["negative_prompt"],
        style_id=row["style_id"],
        style_name=row["style_name"],
        aspect_ratio=row["aspect_ratio"],
        quality=row["quality"],
        seed=row["seed"],
        enhance_prompt=bool(row["enhance_prompt"]),
        price_ptc=Decimal(row["price_ptc"]),
        api_host=row["api_host"],
        out_dir=row["out_dir"],
        remote_id=row["remote_id"],
        state=row["state"],
        images=json.loads(row["images"] or "[]"),
        error=row["error"],
        batch_id=row["batch_id"],
        batch_line=row["batch_line"],
        image_stem=row["image_stem"],
        line_key=row["line_key"],
        owner=Owner(row["pid"], row["pid_started"]) if row["pid"] else None,
    )


@dataclass(frozen=True)
class Spend:
    """What a set of tasks cost: the requests the server took and those it may have."""

    tasks: int = 0
    charged: Decimal = Decimal(0)  # tasks with a task id: the server took them
    maybe_charged: Decimal = Decimal(0)  # no task id, but the request may have gone through

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            self.tasks + other.tasks,
            self.charged + other.charged,
            self.maybe_charged + other.maybe_charged,
        )

    @classmethod
    def of(cls, records: list[TaskRecord]) -> Spend:
        """The spend of rows already read (the same sums as Ledger.spend)."""
        charged = [r.price_ptc for r in records if r.remote_id is not None]
        maybe = [r.price_ptc for r in records if r.remote_id is None and r.state == OUTCOME_UNKNOWN]
        return cls(len(records), sum(charged, Decimal(0)), sum(maybe, Decimal(0)))


class Ledger:
    """Reads and writes ledger rows; every write is its own committed transaction.

    One Ledger may be shared by a batch's worker threads: a lock serialises them.
    """

    def __init__(
        self, connection: sqlite3.Connection, path: Path | None = None, *, indexed: bool = False
    ) -> None:
        self._db = connection
        self._lock = threading.RLock()
        self.path = path
        self._indexed = indexed  # whether searches may use the prompt index (prompt_index.py)

    @classmethod
    @contextmanager
    def open(cls, path: Path | None = None) -> Iterator[Ledger]:
        """Open (creating if needed) the ledger; a ledger that cannot be opened is a ConfigError."""
        path = path or ledger_path()
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            connection = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the task ledger {path}: {exc}") from exc
        try:
            connection.row_factory = sqlite3.Row
            indexed = _prepare(connection)
        except sqlite3.Error as exc:
            connection.close()
            raise ConfigError(f"the task ledger {path} is unusable: {exc}") from exc
        ledger = cls(connection, path, indexed=indexed)
        try:
            ledger._fold_journal()
            yield ledger
        finally:
            with ledger._lock:  # never under a write another thread is still making
                connection.close()

    @property
    def journal(self) -> Path | None:
        """Where task ids go when the ledger cannot take them (beside the ledger)."""
        from soulcli.journal import journal_path

        return journal_path(self.path) if self.path is not None else None

    def _fold_journal(self) -> None:
        """Take back the task ids an earlier run could only write to the journal."""
        from soulcli import journal

        path = self.journal
        if path is None:
            return
        with contextlib.suppress(OSError):  # a full disk now: reserved on a later run
            journal.reserve(path)
        if not journal.has_records(path):
            return

        def apply(record: dict[str, Any]) -> bool:
            task_id = str(record.get("task_id"))
            row_id = record.get("ledger_row")
            if not valid_task_id(task_id) or not isinstance(row_id, int):
                return False  # not a record soul wrote: kept, never a reason to stop
            # The row must be the one the record was written for: same id, seed, prompt.
            with self._lock, _transaction(self._db):
                row = self._db.execute(
                    "SELECT remote_id, seed, prompt FROM tasks WHERE id = ?", (row_id,)
                ).fetchone()
                if row is None or row["seed"] != record.get("seed"):
                    return False
                if row["prompt"][:64] != record.get("prompt_start"):
                    return False
                if row["remote_id"] is not None:
                    return bool(row["remote_id"] == task_id)  # already back in the ledger
                self._db.execute(
                    "UPDATE tasks SET remote_id = ?, state = ?, error = ?, updated_at = ?,"
                    " pid = NULL WHERE id = ?",
                    (
                        task_id,
                        SUBMITTED,
                        "recorded late: the ledger could not be written at submit time",
                        time.time(),
                        row_id,
                    ),
                )
            return True

        with contextlib.suppress(sqlite3.Error, OSError, ValueError, TypeError):
            # Still unwritable: the records stay in the journal for the next run.
            journal.take(path, apply)

    def _write(self, sql: str, params: tuple[Any, ...], *, conflict: bool = False) -> int:
        """Run one statement in its own transaction; with `conflict`, a unique-key clash is
        raised as sqlite3.IntegrityError for the caller (it means "someone else has it")."""
        try:
            with self._lock, _transaction(self._db):
                cursor = self._db.execute(sql, params)
                return int(cursor.lastrowid or 0)
        except sqlite3.IntegrityError:
            if conflict:
                raise
            raise ConfigError("cannot write to the task ledger: a constraint failed") from None
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot write to the task ledger: {exc}") from exc

    def add(
        self,
        request: GenerationRequest,
        *,
        out_dir: str | None,
        api_host: str,
        batch_id: int | None = None,
        batch_line: int | None = None,
        image_stem: str | None = None,
        line_key: str | None = None,
    ) -> int:
        """Record a submission about to be sent; returns its local id.

        With a `line_key` the insert is also the claim on that batch line: if another
        row holds it, AlreadyClaimed is raised and nothing may be sent.
        """
        now = time.time()
        owner = me()
        while True:
            try:
                return self._write(
                    "INSERT INTO tasks (created_at, updated_at, prompt, negative_prompt,"
                    " style_id, style_name, aspect_ratio, quality, seed, enhance_prompt,"
                    " price_ptc, api_host, out_dir, state, pid, pid_started, batch_id,"
                    " batch_line, image_stem, line_key)"
                    # Never before the row added last: rows added at once by several
                    # threads (or processes) then list in the order of their ids.
                    " VALUES (max(?, coalesce((SELECT created_at FROM tasks"
                    " ORDER BY id DESC LIMIT 1), 0)),?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (now, now, request.prompt, request.negative_prompt, request.style_id,
                     request.style_name, request.aspect_ratio, request.quality, request.seed,
                     int(request.enhance_prompt), str(request.price), api_host, out_dir,
                     SUBMITTING, owner.pid, owner.started, batch_id, batch_line, image_stem,
                     line_key),
                    conflict=line_key is not None,
                )  # fmt: skip
            except sqlite3.IntegrityError:
                holder = self.claims([str(line_key)]).get(str(line_key))
                if holder is not None:
                    raise AlreadyClaimed(holder) from None
                # Released between the insert and this read (a refusal): claim it now.

    def claims(self, line_keys: list[str]) -> dict[str, TaskRecord]:
        """The row holding each batch line that has one (its claim not released)."""
        found: dict[str, TaskRecord] = {}
        for marks, chunk in _in_chunks(line_keys):
            for record in self._select(f"line_key IN ({marks}) AND claim_released = 0", chunk):
                found[str(record.line_key)] = record
        return found

    def last_seeds(self, line_keys: list[str]) -> dict[str, int]:
        """The seed each batch line was last sent with, released claims included."""
        seeds: dict[str, int] = {}
        for marks, chunk in _in_chunks(line_keys):
            for record in reversed(self._select(f"line_key IN ({marks})", chunk)):
                seeds[str(record.line_key)] = record.seed  # oldest first: the newest wins
        return seeds

    def adopt(self, local_id: int, line_key: str) -> bool:
        """Give a row from before line keys existed (soul 0.1) its line's key, if still free."""
        try:
            self._write(
                "UPDATE tasks SET line_key = ? WHERE id = ? AND line_key IS NULL",
                (line_key, local_id),
                conflict=True,
            )
        except sqlite3.IntegrityError:
            return False
        return True

    def release_claims(self, line_keys: list[str], *, before: float) -> None:
        """Let lines be sent again (`--again`): rows made before `before` give up their claim."""
        for marks, chunk in _in_chunks(line_keys):
            self._write(
                f"UPDATE tasks SET claim_released = 1 WHERE line_key IN ({marks})"
                " AND claim_released = 0 AND created_at < ?",
                (*chunk, before),
            )

    def take_over(self, local_id: int) -> TaskRecord | None:
        """Make this process the one working on an unfinished task.

        Returns None when the task is now this process's, else the row as it stands:
        finished meanwhile, or followed by a live other soul process. One transaction,
        so two processes resuming the same task cannot both win.
        """
        owner = me()
        try:
            with self._lock, _transaction(self._db):
                row = self._db.execute("SELECT * FROM tasks WHERE id = ?", (local_id,)).fetchone()
                record = _record(row)
                if record.state not in UNFINISHED or record.held_elsewhere:
                    return record
                self._db.execute(
                    "UPDATE tasks SET pid = ?, pid_started = ? WHERE id = ?",
                    (owner.pid, owner.started, local_id),
                )
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot write to the task ledger: {exc}") from exc
        return None

    def find_batch(self, key: str) -> int | None:
        """The id of the batch with this content key, if it ran before."""
        with self._lock:
            row = self._db.execute("SELECT id FROM batches WHERE key = ?", (key,)).fetchone()
        return int(row["id"]) if row is not None else None

    def create_batch(self, key: str, *, source: str, lines: int) -> int:
        """Record a batch; a concurrent run that created it first is reused."""
        self._write(
            "INSERT OR IGNORE INTO batches (key, source, created_at, lines) VALUES (?,?,?,?)",
            (key, source, time.time(), lines),
        )
        found = self.find_batch(key)
        assert found is not None
        return found

    def batches_from(self, source: str) -> set[int]:
        """The ids of the batches run from `source` (`sweep` for every `soul sweep`)."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM batches WHERE source = ?", (source,))
            return {int(row["id"]) for row in rows}

    def batch_tasks(self, batch_id: int) -> dict[int, TaskRecord]:
        """The newest task of each line of a batch, by line number."""
        self.settle_abandoned()
        latest: dict[int, TaskRecord] = {}
        for record in reversed(self._select("batch_id = ?", (batch_id,))):
            if record.batch_line is not None:
                latest[record.batch_line] = record
        return latest

    def set_remote_id(self, local_id: int, remote_id: str) -> None:
        self._write(
            "UPDATE tasks SET remote_id = ?, state = ?, updated_at = ? WHERE id = ?",
            (remote_id, SUBMITTED, time.time(), local_id),
        )

    def release(self, local_id: int) -> None:
        """Stop being the process working on a task (if this one is): another soul may
        resume it now, though this process lives on (a library, an MCP server)."""
        owner = me()
        self._write("UPDATE tasks SET pid = NULL WHERE id = ? AND pid = ?", (local_id, owner.pid))

    # The writes below end this process's work on a task, so they also let it go
    # (pid NULL): another process may resume it at once.

    def set_state(self, local_id: int, state: str, error: str | None = None) -> None:
        self._write(
            "UPDATE tasks SET state = ?, error = ?, updated_at = ?, pid = NULL WHERE id = ?",
            (state, error, time.time(), local_id),
        )

    def set_refused(self, local_id: int, error: str) -> None:
        """The server refused the request (or it was never sent): nothing was charged, and
        the batch line it claimed may be sent again."""
        self._write(
            "UPDATE tasks SET state = ?, error = ?, updated_at = ?, pid = NULL,"
            " claim_released = 1 WHERE id = ?",
            (FAILED, error, time.time(), local_id),
        )

    def set_error(self, local_id: int, error: str) -> None:
        self._write(
            "UPDATE tasks SET error = ?, updated_at = ?, pid = NULL WHERE id = ?",
            (error, time.time(), local_id),
        )

    def set_results(
        self, local_id: int, state: str, images: list[dict[str, Any]], error: str | None = None
    ) -> None:
        self._write(
            "UPDATE tasks SET state = ?, images = ?, error = ?, updated_at = ?, pid = NULL"
            " WHERE id = ?",
            (state, json.dumps(images), error, time.time(), local_id),
        )

    def set_done_seen(self, local_id: int, done_after: float, done_by: float) -> None:
        """Record when the task was seen to end, in seconds after its submit's answer."""
        if 0 <= done_after < done_by:  # a clock set back during the wait gives nonsense
            self._write(
                "UPDATE tasks SET done_after = ?, done_by = ? WHERE id = ?",
                (done_after, done_by, local_id),
            )

    def recent_ends(
        self, *, api_host: str, quality: str, batch_id: int | None, limit: int = 5
    ) -> list[tuple[float, float]]:
        """(done_after, done_by) of the newest tasks like this one that were seen to end:
        sent to the same API host at the same quality, those of its own batch first (a
        batch line's share the server with it; for a single task, other single tasks),
        then the newest of the rest."""
        similar = "SELECT done_after, done_by FROM tasks WHERE done_by IS NOT NULL"
        similar += " AND api_host = ? AND quality = ? AND batch_id IS {} ? ORDER BY id DESC LIMIT ?"
        try:
            with self._lock:
                rows = self._db.execute(
                    similar.format(""), (api_host, quality, batch_id, limit)
                ).fetchall()
                if len(rows) < limit:  # too few of its own kind: the newest of the rest
                    rows += self._db.execute(
                        similar.format("NOT"), (api_host, quality, batch_id, limit - len(rows))
                    ).fetchall()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot read the task ledger: {exc}") from exc
        return [(float(row["done_after"]), float(row["done_by"])) for row in rows]

    def _select(
        self, where: str = "1=1", params: tuple[Any, ...] = (), limit: int | None = None
    ) -> list[TaskRecord]:
        sql = f"SELECT * FROM tasks WHERE {where} ORDER BY created_at DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_record(row) for row in self._read(sql, params)]

    def get(self, key: str | int) -> TaskRecord | None:
        """A row by local id (digits) or remote task id."""
        text = str(key).strip()
        if text.isdigit():
            found = self._select("id = ?", (int(text),))
            if found:
                return found[0]
        found = self._select("remote_id = ?", (text,), limit=1)
        return found[0] if found else None

    def newest(self) -> TaskRecord | None:
        self.settle_abandoned()
        found = self._select(limit=1)
        return found[0] if found else None

    def unfinished(self) -> list[TaskRecord]:
        """Tasks with a task id that soul has not finished with, newest first."""
        self.settle_abandoned()
        marks = ",".join("?" * len(UNFINISHED))
        return self._select(f"state IN ({marks}) AND remote_id IS NOT NULL", UNFINISHED)

    def search(
        self,
        *,
        text: str | None = None,
        state: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[TaskRecord]:
        """Rows newest first, filtered by prompt text, state and creation time."""
        self.settle_abandoned()
        where, params = _filters(text, state, since)
        if not (text and self._uses_index(text)):
            return self._select(where, params, limit)
        if limit is not None:
            # The newest tasks first: a text that many prompts hold fills the page within
            # them, which costs less than ordering every match the index has.
            start = self._read(
                "SELECT created_at, id FROM tasks INDEXED BY tasks_newest"
                f" ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET {NEWEST_SCANNED - 1}"
            )
            if start:
                newest = self._read(
                    "SELECT id FROM tasks INDEXED BY tasks_newest"
                    f" WHERE (created_at, id) >= (?, ?) AND {where}"
                    f" ORDER BY created_at DESC, id DESC LIMIT {int(limit)}",
                    (*start[0], *params),
                )
                if len(newest) == limit:
                    return self._by_ids([row[0] for row in newest])
        return self._by_ids(self._indexed_ids(text, state, since, limit))

    def _uses_index(self, text: str) -> bool:
        return self._indexed and prompt_index.can_search(text)

    def _indexed_ids(
        self, text: str, state: str | None, since: float | None, limit: int | None
    ) -> list[int]:
        """The ids of the tasks whose prompt holds `text` (or whose task id it is), newest
        first, from the prompt index: reading only the matches, and ordering only them."""
        where, params = _filters(None, state, since)  # on task_costs, which has both
        cut = f" LIMIT {int(limit)}" if limit is not None else ""
        words, costs = prompt_index.WORDS, prompt_index.COSTS
        found = self._read(
            f"SELECT costs.id, costs.created_at FROM {words}"
            f" JOIN {costs} AS costs ON costs.id = {words}.rowid"
            f" WHERE {words} MATCH ? AND {where}"
            f" ORDER BY costs.created_at DESC, costs.id DESC{cut}",
            (prompt_index.phrase(text), *params),
        )
        named = self._read(
            f"SELECT id, created_at FROM {costs}"
            f" WHERE id IN (SELECT id FROM tasks WHERE remote_id = ?) AND {where}",
            (text, *params),
        )
        newest = sorted({(row["created_at"], row["id"]) for row in [*found, *named]}, reverse=True)
        ids = [row_id for _, row_id in newest]
        return ids if limit is None or limit < 0 else ids[:limit]  # LIMIT -1: no limit

    def _by_ids(self, ids: list[int]) -> list[TaskRecord]:
        """The rows of `ids`, in the order given."""
        rows: dict[int, TaskRecord] = {}
        for marks, chunk in _in_chunks(ids):
            for row in self._read(f"SELECT * FROM tasks WHERE id IN ({marks})", chunk):
                rows[row["id"]] = _record(row)
        return [rows[row_id] for row_id in ids if row_id in rows]

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot read the task ledger: {exc}") from exc

    def spend(
        self, *, text: str | None = None, state: str | None = None, since: float | None = None
    ) -> Spend:
        """How many tasks match the filters of `search` and what they cost, summed by SQLite.

        The whole ledger's totals are the counts the `spend` table keeps by price. A
        searched text adds up its matches from the prompt index; other filters add up
        the matching rows in one pass over tasks_newest.
        """
        self.settle_abandoned()  # the rows `search` would list, in the states it shows
        if not (text or state or since is not None):
            spend = Spend()
            for row in self._read("SELECT price_ptc, tasks, charged, maybe FROM spend"):
                price = Decimal(row["price_ptc"])  # decimal text: the sums stay exact
                spend += Spend(row["tasks"], price * row["charged"], price * row["maybe"])
            return spend
        if text and self._uses_index(text):
            where, params = _filters(None, state, since)
            words, costs = prompt_index.WORDS, prompt_index.COSTS
            sums = "SELECT count(*), sum(charged_micro), sum(maybe_micro)"
            match = prompt_index.phrase(text)
            # One statement, so one snapshot of the ledger: the prompts' matches, then
            # the task whose id the text is, unless its prompt matched too.
            totals = self._read(
                f"{sums} FROM {words} JOIN {costs} AS costs ON costs.id = {words}.rowid"
                f" WHERE {words} MATCH ? AND {where}"
                f" UNION ALL {sums} FROM {costs}"
                " WHERE id IN (SELECT id FROM tasks WHERE remote_id = ?)"
                f" AND id NOT IN (SELECT rowid FROM {words} WHERE {words} MATCH ?) AND {where}",
                (match, *params, text, match, *params),
            )
        else:
            where, params = _filters(text, state, since)
            # The index is named so the plan cannot drift: left to itself, SQLite answers
            # --state from tasks_state_newest and opens every row (80 ms at 100,000
            # rows, not 20).
            totals = self._read(
                f"SELECT count(*), sum({prompt_index.CHARGED.format(row='tasks')}),"
                f" sum({prompt_index.MAYBE.format(row='tasks')})"
                f" FROM tasks INDEXED BY tasks_newest WHERE {where}",
                params,
            )
        spend = Spend()
        for tasks, charged, maybe in totals:
            spend += Spend(tasks, Decimal(charged or 0).scaleb(-6), Decimal(maybe or 0).scaleb(-6))
        return spend

    def settle_abandoned(self) -> list[int]:
        """Mark rows left in `submitting` by a process that died as outcome_unknown.

        Returns the local ids this call marked, so a command can tell the user about them.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id, pid, pid_started, updated_at FROM tasks WHERE state = ?",
                (SUBMITTING,),
            )
            stale = rows.fetchall()
        settled: list[int] = []
        for row in stale:
            owner = Owner(row["pid"], row["pid_started"]) if row["pid"] else None
            # Without a start time (soul 0.1, or no /proc) a reused pid looks alive; no
            # submit takes an hour, so a row that old is abandoned whoever has the pid.
            too_old = row["pid_started"] is None and time.time() - row["updated_at"] > 3600
            if owner is None or not owner.alive or too_old:
                self.set_state(
                    row["id"],
                    OUTCOME_UNKNOWN,
                    "soul stopped while submitting; the request may have been charged",
                )
                settled.append(int(row["id"]))
        return settled


def _filters(
    text: str | None, state: str | None, since: float | None
) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause and its parameters for a prompt text, a state and a start time."""
    clauses: list[str] = ["1=1"]
    params: list[Any] = []
    if text:
        clauses.append("(prompt LIKE ? ESCAPE '\\' OR remote_id = ?)")
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params += [f"%{escaped}%", text]
    if state:
        clauses.append("state = ?")
        params.append(state)
    if since is not None:
        clauses.append("created_at >= ?")
        params.append(since)
    return " AND ".join(clauses), tuple(params)


KeyT = TypeVar("KeyT", str, int)


def _in_chunks(keys: Sequence[KeyT], size: int = 500) -> Iterator[tuple[str, tuple[KeyT, ...]]]:
    """Keys in slices small enough for one `IN (...)`, each with its placeholders."""
    for start in range(0, len(keys), size):
        chunk = tuple(keys[start : start + size])
        yield ",".join("?" * len(chunk)), chunk


def _prepare(connection: sqlite3.Connection, wait: float = 30.0) -> bool:
    """WAL mode, durable commits, the schema and the prompt index; retried while another
    process holds a lock. Returns whether searches may use the prompt index.

    Switching a new file to WAL needs it to itself, and SQLite answers "database is
    locked" at once rather than waiting, so two soul processes starting together
    take turns here.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            connection.execute("PRAGMA busy_timeout = 30000")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")
            if connection.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                with _transaction(connection):
                    # Read again inside the write lock: another process may have just done it.
                    version = connection.execute("PRAGMA user_version").fetchone()[0]
                    for step in range(version + 1, SCHEMA_VERSION + 1):
                        # One statement at a time: executescript() would commit early.
                        for statement in _statements(_MIGRATIONS[step]):
                            connection.execute(statement)
                    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return _prepare_prompt_index(connection)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _prepare_prompt_index(connection: sqlite3.Connection) -> bool:
    """Build the prompt index if this SQLite can and it is not whole, or stop keeping it
    if this SQLite cannot; whether searches may use it (see prompt_index.py)."""
    capable = prompt_index.supported(connection)
    whole = len(prompt_index.TRIGGERS)
    present = prompt_index.triggers_present(connection)
    if (capable and len(present) == whole) or (not capable and not present):
        return capable
    try:
        with _transaction(connection):
            present = prompt_index.triggers_present(connection)  # again, inside the lock
            if not capable:
                prompt_index.drop_triggers(connection)
            elif len(present) < whole:
                for statement in _statements(prompt_index.BUILD):
                    connection.execute(statement)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise
        # A tokenizer claimed but not loadable, or a ledger this user may only read:
        # searches use LIKE, and writes must not meet triggers this SQLite cannot run.
        with contextlib.suppress(sqlite3.Error), _transaction(connection):
            prompt_index.drop_triggers(connection)
        return False
    return capable


def _statements(script: str) -> Iterator[str]:
    """A migration's statements one by one (a trigger's body has semicolons of its own)."""
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \n;"):
                yield statement
            statement = ""


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, so concurrent writers queue on busy_timeout, never corrupt."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
