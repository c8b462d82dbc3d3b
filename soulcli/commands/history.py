"""`soul history`: every task soul submitted, from the local ledger, with what it cost."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from soulcli.commands import new_app
from soulcli.errors import ExitCode, SoulError, UsageError
from soulcli.options import JsonFlag

if TYPE_CHECKING:
    from soulcli.ledger import Spend, TaskRecord

app = new_app(name="history", subcommand_metavar="[show TASK]")


@app.callback(invoke_without_command=True)
def history(
    ctx: typer.Context,
    search: Annotated[
        str | None,
        typer.Option("--search", "-S", metavar="TEXT", help="Only prompts containing TEXT."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", help="Show at most N tasks.")
    ] = 50,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            metavar="STATE",
            help="Only tasks in this state (completed, "
            "partial, failed, submitted, timed_out, outcome_unknown, submitting).",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="AGE|DATE",
            help="Only tasks newer than 7d, 12h, 30m, 2w or a date such as 2026-11-01.",
        ),
    ] = None,
    no_pager: Annotated[
        bool, typer.Option("--no-pager", help="Do not page long output on a terminal.")
    ] = False,
    json_: JsonFlag = False,
) -> None:
    """List past tasks: time, state, style, quality, ratio, seed, cost, images, prompt.

    \b
    Examples:
      soul history --since 7d --search dog
      soul history show 12
    """
    if ctx.invoked_subcommand is not None:
        return
    from soulcli import ui
    from soulcli.ledger import STATES, Ledger, Spend

    if limit < 1:  # checked here rather than by Click, to keep "[x>=1]" out of the help
        raise UsageError(f"--limit {limit} is not a number of tasks; give 1 or more")
    if state is not None and state not in STATES:
        raise UsageError(f"unknown state {state!r}", hint="use one of " + ", ".join(STATES))
    cutoff = parse_since(since) if since else None
    with Ledger.open() as ledger:
        records = ledger.search(text=search, state=state, since=cutoff, limit=limit)
        # The totals count every matching task, not only those shown. A list the limit
        # did not cut holds them all: its own rows give the totals without a second scan
        # (and --json prints none).
        if json_ or len(records) < limit:
            totals = Spend.of(records)
        else:
            totals = ledger.spend(text=search, state=state, since=cutoff)
    if json_:
        ui.emit_json([r.to_json() for r in records])
        return
    if not records:
        ui.say("soul: no tasks match" if (search or state or since) else "soul: no tasks yet")
        return
    _print_table(records, totals, pager=not no_pager)


@app.command("show")
def show(
    task: Annotated[str, typer.Argument(help="A local id (the # column) or a task id.")],
    json_: JsonFlag = False,
) -> None:
    """Show one task in full, with its image paths.

    \b
    Example:
      soul history show 12 --json
    """
    from soulcli import ui
    from soulcli.ledger import Ledger
    from soulcli.text import one_line

    with Ledger.open() as ledger:
        record = ledger.get(task)
    if record is None:
        raise SoulError(
            f"no task {task!r} in the ledger",
            hint="see `soul history`",
            exit_code=ExitCode.NOT_FOUND,
        )
    if json_:
        ui.emit_json(record.to_json())
        return
    fields = record.to_json()
    for key in ("id", "created_at", "state", "task_id", "prompt", "negative_prompt"):
        ui.emit(f"{key}: {one_line(fields[key] if fields[key] is not None else '-', 2000)}")
    ui.emit(f"style: {record.style_name} ({record.style_id})")
    for key in ("aspect_ratio", "quality", "seed", "enhance_prompt", "cost_ptc", "out_dir"):
        value = fields[key]
        # JSON's spelling for a flag (`true`), as `--json` and the sidecars write it.
        ui.emit(f"{key}: {str(value).lower() if isinstance(value, bool) else value}")
    if record.error:
        ui.emit(f"error: {one_line(record.error, 500)}")
    for image in record.images:
        where = image.get("path") or f"not saved ({one_line(image.get('status'), 40)})"
        if image.get("path") and image.get("variant") == "min":
            where += " (the smaller preview; `soul fetch` tries the full image again)"
        ui.emit(f"image {image.get('index')}: {where}")


def parse_since(text: str) -> float:
    """A cutoff time from `7d`-style ages or an ISO date."""
    import re
    import time
    from datetime import datetime

    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text.lower())
    if match:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
        return time.time() - int(match.group(1)) * unit
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError as exc:
        raise UsageError(
            f"--since {text!r} is not an age (7d, 12h) or a date (2026-11-01)"
        ) from exc


STATE_COLOURS = {
    "completed": "green",
    "partial": "yellow",
    "failed": "red",
    "outcome_unknown": "magenta",
    "timed_out": "yellow",
    "submitted": "cyan",
}


def totals_line(totals: Spend, shown: int) -> str:
    """`3 tasks · spent 0.3 PTC`, plus what may have been charged without a task id, and
    how many of the tasks are shown when --limit cut the list."""
    from soulcli.models import format_ptc

    count = totals.tasks
    line = f"{count} task{'s' if count != 1 else ''} · spent {format_ptc(totals.charged)} PTC"
    if totals.maybe_charged:
        line += f" (+{format_ptc(totals.maybe_charged)} PTC possibly charged)"
    if shown < count:
        line += f" · the newest {shown} shown"
    return line


def history_rows(records: list[TaskRecord]) -> list[list[str]]:
    """One row of cells per task, in the order of HISTORY_COLUMNS."""
    from datetime import datetime

    from soulcli.models import format_ptc
    from soulcli.text import one_line

    return [
        [
            str(record.id),
            datetime.fromtimestamp(record.created_at).strftime("%Y-%m-%d %H:%M"),
            record.state,
            record.style_name,
            record.quality,
            record.aspect_ratio,
            str(record.seed),
            format_ptc(record.price_ptc) if record.charged else "-",
            f"{len(record.saved_paths)}/{max(4, len(record.images))}",
            one_line(record.prompt, 200),
        ]
        for record in records
    ]


# On a narrow terminal the seed, ratio and quality go first, then the image count,
# style and date; the # (which `history show` and `fetch` take), the state, the cost
# and the prompt stay.
HISTORY_COLUMNS = [
    ("#", 0, "right"),
    ("When", 2, "left"),
    ("State", 0, "left"),
    ("Style", 3, "left"),
    ("Quality", 5, "left"),
    ("Ratio", 6, "left"),
    ("Seed", 7, "right"),
    ("Cost", 0, "right"),
    ("Images", 4, "right"),
    ("Prompt", 0, "left"),
]


def _print_table(records: list[TaskRecord], totals: Spend, *, pager: bool) -> None:
    """A table as wide as the terminal, or plain columns and the totals on stderr when piped."""
    import sys

    from soulcli import ui

    rows = history_rows(records)
    if not sys.stdout.isatty():
        from soulcli.tables import plain_lines

        headers = [name.upper() for name, _, _ in HISTORY_COLUMNS]
        right = frozenset(
            i for i, (_, _, justify) in enumerate(HISTORY_COLUMNS) if justify == "right"
        )
        for text in plain_lines(headers, rows, right=right):
            ui.emit(text)
        ui.say(totals_line(totals, len(records)))
        return
    from rich.console import Console
    from rich.text import Text

    from soulcli.tables import Column, fitted_lines

    columns = [
        Column(name, drop=drop, justify=justify, flex=name == "Prompt")  # type: ignore[arg-type]
        for name, drop, justify in HISTORY_COLUMNS
    ]
    cells: list[list[str | Text]] = []
    for row in rows:
        state = Text(row[2], style=STATE_COLOURS.get(row[2], ""))
        cells.append([*row[:2], state, *row[3:]])
    console = Console(highlight=False)
    with console.capture() as captured:
        for line in fitted_lines(columns, cells, console.width):
            console.print(line)
        console.print(totals_line(totals, len(records)), style="dim")
    ui.page(captured.get(), allowed=pager)  # like `git log`: more than a screen is paged
