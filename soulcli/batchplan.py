"""What a batch run does with each line, given what the ledger remembers of every earlier run.

A line's identity is its resolved request and where it is saved (see
`BatchLine.identity`), not its place in a file: editing a file, re-running it, or
running it twice at once never pays for a line that was already sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from decimal import Decimal

from soulcli.batchfile import BatchLine
from soulcli.ledger import FINAL, OUTCOME_UNKNOWN, Ledger, TaskRecord
from soulcli.models import GenerationRequest

# What the ledger says of a line that another row holds.
DONE = "done"
RESUME = "resume"
ELSEWHERE = "elsewhere"
UNKNOWN = "unknown"


def holder_kind(record: TaskRecord) -> str:
    """What to do with a line whose claim `record` holds (it was sent, or is being sent)."""
    if record.state in FINAL:
        return DONE  # finished, whatever the outcome: it was charged, never send it again
    if record.held_elsewhere:
        return ELSEWHERE  # a live soul process is on it: leave it to that process
    if record.remote_id is not None:
        return RESUME
    return UNKNOWN  # may have been charged, and no task id: never sent again


@dataclass
class Item:
    """One unit of work: a line to submit, or (with a record) one to resume."""

    line: BatchLine
    record: TaskRecord | None = None

    @property
    def request(self) -> GenerationRequest:
        """What was (or will be) sent: a resumed line's recorded request, seed included."""
        return self.record.request() if self.record is not None else self.line.request


@dataclass
class Plan:
    """Each line of a batch, sorted by what this run does with it."""

    new: list[BatchLine] = field(default_factory=list)
    to_resume: list[Item] = field(default_factory=list)
    done: list[tuple[TaskRecord, BatchLine]] = field(default_factory=list)
    elsewhere: list[tuple[TaskRecord, BatchLine]] = field(default_factory=list)
    unknown: list[tuple[TaskRecord, BatchLine]] = field(default_factory=list)

    @property
    def cost(self) -> Decimal:
        """What the new lines cost: the only ones this run pays for."""
        return sum((line.request.price for line in self.new), Decimal(0))

    @property
    def seen_before(self) -> bool:
        return bool(self.to_resume or self.done or self.elsewhere or self.unknown)

    def add(self, line: BatchLine, record: TaskRecord | None) -> None:
        if record is None:
            self.new.append(line)
            return
        kind = holder_kind(record)
        if kind == DONE:
            self.done.append((record, line))
        elif kind == ELSEWHERE:
            self.elsewhere.append((record, line))
        elif kind == RESUME:
            self.to_resume.append(Item(line, record))
        else:
            self.unknown.append((record, line))


def make_plan(
    ledger: Ledger, lines: list[BatchLine], *, again: bool, legacy_batch_id: int | None
) -> Plan:
    """Sort the lines by what the ledger holds for each.

    `again` gives up the earlier runs' claims first, so every line is sent anew (with a
    new random seed where none was given). `legacy_batch_id` is the same file's batch
    as soul 0.1 recorded it, by line number, before lines had keys.
    """
    keys = [line.key for line in lines]
    if again:
        ledger.release_claims(keys, before=time.time())
    ledger.settle_abandoned()
    claims = ledger.claims(keys)
    legacy = legacy_batch_id is not None and not again
    if legacy and _adopt_legacy(ledger, lines, claims, int(legacy_batch_id or 0)):
        claims = ledger.claims(keys)
    seeds = {} if again else ledger.last_seeds([ln.key for ln in lines if not ln.seed_given])
    plan = Plan()
    for line in lines:
        record = claims.get(line.key)
        if record is None and line.key in seeds:
            # Never charged (refused, or not sent), but sent with this seed before: keep it.
            line = replace(line, request=replace(line.request, seed=seeds[line.key]))
        plan.add(line, record)
    return plan


def _adopt_legacy(
    ledger: Ledger, lines: list[BatchLine], claims: dict[str, TaskRecord], batch_id: int
) -> bool:
    """Give soul 0.1's rows of this same file the keys of their lines; True if any moved."""
    adopted = False
    by_number = ledger.batch_tasks(batch_id)
    for line in lines:
        record = by_number.get(line.number)
        if line.key in claims or record is None or record.line_key is not None:
            continue
        never_charged = record.remote_id is None and record.state != OUTCOME_UNKNOWN
        if never_charged or record.prompt != line.request.prompt:
            continue
        adopted |= ledger.adopt(record.id, line.key)
    return adopted
