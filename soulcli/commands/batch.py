"""`soul batch`: many prompts at once, concurrently, resumably, with zero duplicate POSTs."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from soulcli.batchrun import DEFAULT_CONCURRENCY, UNRECORDED
from soulcli.commands import new_app
from soulcli.errors import ExitCode, SoulError, UsageError
from soulcli.options import (
    ConcurrencyOption,
    EnhanceOption,
    NegativeOption,
    OutDir,
    QualityOption,
    RatioOption,
    SeedOption,
    StyleOption,
    TimeoutOption,
    YesOption,
)

if TYPE_CHECKING:
    from soulcli.batchfile import BatchDefaults, BatchLine
    from soulcli.batchplan import Plan
    from soulcli.batchrun import LineResult
    from soulcli.config import Settings


def batch(
    file: Annotated[
        str,
        typer.Argument(
            help="Prompts file: one prompt per line, or JSON Lines; `-` reads stdin.",
            show_default=False,
        ),
    ],
    style: StyleOption = None,
    ar: RatioOption = None,
    quality: QualityOption = None,
    seed: SeedOption = None,
    negative: NegativeOption = None,
    enhance: EnhanceOption = None,
    out: OutDir = None,
    json_: Annotated[
        bool,
        typer.Option("--json", help="One JSON object per finished task (JSON Lines) on stdout."),
    ] = False,
    concurrency: ConcurrencyOption = DEFAULT_CONCURRENCY,
    max_cost: Annotated[
        str | None,
        typer.Option("--max-cost", metavar="PTC", help="Refuse the batch if it costs more."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an earlier run of this file (re-running the same file does this too).",
        ),
    ] = False,
    again: Annotated[
        bool,
        typer.Option(
            "--again",
            help="Pay again for lines already sent: submit every line anew, with new "
            "random seeds where none is given.",
        ),
    ] = False,
    yes: YesOption = False,
    timeout: TimeoutOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check the file and print every request body (JSON Lines) and the total "
            "price; needs no key, sends nothing.",
        ),
    ] = False,
) -> None:
    """Generate images for every prompt in a file, several tasks at a time.

    FILE holds one prompt per line, or JSON Lines: {"prompt": "...", "style": "Tokyo",
    "ar": "16:9", "quality": "1080p", "seed": 7, "negative": "...", "out": "dir",
    "name": "stem"} (the first line decides which); blank lines and # comments are
    skipped. Re-running the same file resumes it and never pays twice for a line.

    \b
    Examples:
      soul batch prompts.txt --style Tokyo --out pics
      soul batch prompts.txt --dry-run
      soul batch prompts.txt -c 8 --json | jq -r '.images[].path'
    """
    from soulcli.batchfile import BatchDefaults, decode_batch
    from soulcli.config import effective_settings

    if resume and again:
        raise UsageError("--resume and --again contradict each other; choose one")
    settings = effective_settings()
    source = "stdin" if file == "-" else file
    text = decode_batch(read_batch_bytes(file), source)
    defaults = BatchDefaults(
        style=style if style is not None else settings.style,
        ar=ar if ar is not None else settings.aspect_ratio,
        quality=quality if quality is not None else settings.quality,
        seed=seed,
        negative=negative,
        enhance=enhance,
        out=str(out) if out is not None else settings.out_dir,
    )
    results = run_batch(
        text,
        source,
        defaults,
        settings=settings,
        as_json=json_,
        concurrency=concurrency,
        max_cost=max_cost,
        resume=resume,
        again=again,
        yes=yes,
        timeout=timeout,
        dry_run=dry_run,
        confirm_above=settings.confirm_above,
    )
    exit_for(results)


def run_batch(
    text: str,
    source: str,
    defaults: BatchDefaults,
    *,
    settings: Settings,
    as_json: bool,
    concurrency: int,
    max_cost: str | None,
    resume: bool,
    again: bool,
    yes: bool,
    timeout: float | None,
    dry_run: bool,
    confirm_above: Decimal | None,
    limit_name: str = "confirm_above",
) -> list[LineResult]:
    """Check, plan, price, confirm and run a batch's lines; print and summarize them.

    Used by `soul batch` and `soul sweep`. Returns every line's result (none for a dry
    run); raises for a stop (Ctrl-C), a refusal, or a cost above `max_cost`.
    """
    from soulcli import ui
    from soulcli.batchfile import BatchFileError, batch_key, parse_batch
    from soulcli.batchplan import make_plan
    from soulcli.config import check_base_url, parse_ptc
    from soulcli.errors import ConfigError
    from soulcli.ledger import Ledger
    from soulcli.models import SUBMIT_PATH, format_ptc

    try:
        lines = parse_batch(text, defaults, source=source)
    except BatchFileError as exc:
        for problem in exc.problems:
            ui.say(f"soul: error: {problem}")
        raise
    try:
        ceiling = parse_ptc(max_cost) if max_cost is not None else None
    except ConfigError as exc:
        raise UsageError(f"--max-cost: {exc.message}") from exc
    if dry_run:
        url = check_base_url(settings.base_url) + SUBMIT_PATH
        plan = dry_run_plan(lines, batch_key(text, defaults), again=again)
        print_dry_run(plan.new if plan else lines, source, url=url, as_json=as_json)
        total = plan.cost if plan else sum((ln.request.price for ln in lines), Decimal(0))
        what = describe_plan(plan) if plan else f"{len(lines)} new ({format_ptc(total)} PTC)"
        ui.say(f"soul: dry run of {source} (POST {url}): {what}; nothing was sent")
        return []

    with Ledger.open() as ledger:
        key = batch_key(text, defaults)
        batch_id = ledger.find_batch(key)
        plan = make_plan(ledger, lines, again=again, legacy_batch_id=batch_id)
        if resume and not plan.seen_before:
            raise UsageError(
                f"no earlier run of {source} with these options to resume",
                hint="run it without --resume to start it",
            )
        cost = plan.cost
        ui.say(f"soul: batch of {len(lines)} prompts from {source}: {describe_plan(plan)}")
        if ceiling is not None and cost > ceiling:
            raise SoulError(
                f"this batch would cost {format_ptc(cost)} PTC, above --max-cost "
                f"{format_ptc(ceiling)}; nothing was sent",
                exit_code=ExitCode.DECLINED,
            )
        if plan.new:
            from soulcli.commands.generate import confirm_price

            confirm_price(cost, confirm_above, yes=yes, limit_name=limit_name)
        from soulcli.batchrun import run_plan
        from soulcli.commands.batch_progress import BatchProgress

        progress = BatchProgress(
            len(lines), already_done=len(plan.done), live=ui.stderr_is_terminal(), as_json=as_json
        )
        results, code = run_plan(
            plan,
            ledger=ledger,
            settings=settings,
            batch_id=batch_id,
            key=key,
            source=source,
            total=len(lines),
            concurrency=concurrency,
            timeout=timeout or _default_timeout(),
            events=progress,
        )
        spent_now = progress.spent
    summarize(results, source, spent_now)
    if code != ExitCode.OK:
        raise SoulError(
            "batch stopped; run the same command again to resume it",
            hint="tasks in flight are kept in the ledger and will not be sent twice",
            exit_code=code,
        )
    return results


def exit_for(results: list[LineResult]) -> None:
    """Exit 17 if a task could not be recorded, 16 if any line did not complete."""
    if any(result.state == UNRECORDED for result in results):
        raise typer.Exit(int(ExitCode.UNRECORDED))
    if any(result.state != "completed" for result in results):
        raise typer.Exit(int(ExitCode.BATCH_INCOMPLETE))


def dry_run_plan(lines: list[BatchLine], key: str, *, again: bool) -> Plan | None:
    """What a real run would send, from the ledger if there is one (None: no ledger yet,
    or --again, so every line is new). A dry run creates no ledger of its own."""
    from soulcli.batchplan import make_plan
    from soulcli.ledger import Ledger
    from soulcli.paths import ledger_path

    if again or not ledger_path().exists():
        return None
    with Ledger.open() as ledger:
        return make_plan(ledger, lines, again=False, legacy_batch_id=ledger.find_batch(key))


def print_dry_run(lines: list[BatchLine], source: str, *, url: str, as_json: bool) -> None:
    """The request body of every line a real run would send (with --json: line, URL,
    price, output directory and name too), on stdout."""
    from soulcli import ui

    for line in lines:
        body = line.request.body()
        if as_json:
            ui.emit_json(
                {
                    "line": line.number,
                    "method": "POST",
                    "url": url,
                    "body": body,
                    "cost_ptc": float(line.request.price),
                    "out_dir": str(Path(line.out or ".").expanduser().resolve()),
                    "name": line.name,
                }
            )
        else:
            ui.emit_json(body)


def describe_plan(plan: Plan) -> str:
    """`3 already done, 1 new (0.1 PTC)`, and what else the ledger says, before anything is sent."""
    from soulcli.models import format_ptc

    parts = [f"{len(plan.done)} already done", f"{len(plan.new)} new ({format_ptc(plan.cost)} PTC)"]
    if plan.to_resume:
        parts.append(f"{len(plan.to_resume)} to resume")
    if plan.elsewhere:
        pids = sorted({r.owner.pid for r, _ in plan.elsewhere if r.owner is not None})
        parts.append(
            f"{len(plan.elsewhere)} running elsewhere (soul process "
            + ", ".join(str(pid) for pid in pids)
            + ")"
        )
    if plan.unknown:
        parts.append(f"{len(plan.unknown)} left alone (may have been charged)")
    return ", ".join(parts)


def _default_timeout() -> float:
    from soulcli.waiting import DEFAULT_WAIT_TIMEOUT

    return DEFAULT_WAIT_TIMEOUT


def read_batch_bytes(file: str) -> bytes:
    if file == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(file).expanduser().read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror}") from exc


def summarize(results: list[LineResult], source: str, spent_now: Decimal) -> None:
    """A summary on stderr: counts by state, spend, and every line that did not complete."""
    from soulcli import ui
    from soulcli.models import format_ptc
    from soulcli.text import one_line, shorten

    by_state: dict[str, int] = {}
    for result in results:
        by_state[result.state] = by_state.get(result.state, 0) + 1
    ui.say(
        f"soul: batch {source}: {len(results)} lines, {format_ptc(spent_now)} PTC spent by this run"
    )
    width = max([16, *(len(state) for state in by_state)])
    ui.say(f"soul:   {'state':<{width}} {'lines':>5}")
    for state, count in sorted(by_state.items()):
        ui.say(f"soul:   {state:<{width}} {count:>5}")
    for result in sorted(results, key=lambda r: r.line.number):
        if result.state != "completed":
            ui.say(
                f"soul:   line {result.line.number} {result.state}: "
                f"{shorten(result.line.request.prompt, 40)!r}"
                + (f" ({one_line(result.detail, 300)})" if result.detail else "")
            )


app = new_app()
app.command()(batch)
