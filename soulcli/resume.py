"""Taking a ledger task up again: where its images go, who follows it, what is on disk.

Shared by `soul fetch` and the library's `Soul.wait` and `Soul.fetch`.
"""

from __future__ import annotations

from pathlib import Path

from soulcli.errors import ExitCode, SoulError
from soulcli.ledger import Ledger, TaskRecord


def take_over_unfinished(
    ledger: Ledger, api_host: str
) -> tuple[list[TaskRecord], list[tuple[TaskRecord, int]], list[TaskRecord]]:
    """The unfinished tasks sent to `api_host`, oldest first, now this process's; those
    that another live soul process follows, with its pid; and those sent to another API
    host (left alone). A task that finished a moment ago is in none of them."""
    mine: list[TaskRecord] = []
    busy: list[tuple[TaskRecord, int]] = []
    elsewhere: list[TaskRecord] = []
    for record in reversed(ledger.unfinished()):
        if record.api_host and record.api_host != api_host:
            elsewhere.append(record)
            continue
        standing = ledger.take_over(record.id)
        if standing is None:
            mine.append(record)
        elif standing.held_elsewhere and standing.owner is not None:
            busy.append((record, standing.owner.pid))
    return mine, busy, elsewhere


def images_dir(record: TaskRecord, out: Path | None) -> Path:
    """Where a ledger task's images go: `--out`, else the directory it was submitted with."""
    from soulcli.outdir import prepare_out_dir

    if out is not None:
        return prepare_out_dir(Path(out).expanduser())
    try:
        return prepare_out_dir(Path(record.out_dir or ".").expanduser())
    except SoulError as exc:
        exc.hint = "give --out DIR to save them somewhere else"
        raise


def refuse_if_followed(ledger: Ledger, record: TaskRecord) -> None:
    """Take an unfinished task over, or stop if another live soul process follows it."""
    pid = followed_elsewhere(ledger, record)
    if pid is not None:
        raise SoulError(
            f"task {record.remote_id} is being followed by soul process {pid}",
            hint="it saves the images itself; see `soul history` when it is done",
            exit_code=ExitCode.NOT_FOUND,
        )


def followed_elsewhere(ledger: Ledger, record: TaskRecord) -> int | None:
    """Take an unfinished task over; the pid of the live soul process following it instead."""
    from soulcli.ledger import UNFINISHED

    if record.state not in UNFINISHED:
        return None  # finished: nobody follows it, and a fetch only reads or replaces files
    standing = ledger.take_over(record.id)
    if standing is not None and standing.held_elsewhere and standing.owner is not None:
        return standing.owner.pid
    return None


def already_saved(record: TaskRecord, out_dir: Path) -> bool:
    """A finished task whose full images are all still on disk needs no network.

    A task with a preview saved in place of a full image goes to the network, to try
    the full image again.
    """
    from soulcli.ledger import COMPLETED, FAILED, PARTIAL

    paths = record.saved_paths
    return (
        record.state in (COMPLETED, PARTIAL, FAILED)
        and not record.previews_in(out_dir)
        and all(Path(p).is_file() and Path(p).parent == out_dir for p in paths)
    )
