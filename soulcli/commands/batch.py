"""`soul batch`: many prompts at once, concurrently, resumably, with zero duplicate POSTs."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from soulcli.commands import new_app
from soulcli.errors import ExitCode, SoulError, UsageError
from soulcli.options import (
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
    from soulcli.batchfile import BatchLine
    from soulcli.client import ApiClient
    from soulcli.commands.batch_progress import BatchProgress
    from soulcli.commands.common import Outcome
    from soulcli.downloads import ImageDownloader
    from soulcli.ledger import Ledger, TaskRecord
    from soulcli.limiter import AdaptiveLimit

DEFAULT_CONCURRENCY = 4
FINAL_STATES = ("completed", "partial", "failed")


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
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=32, help="Tasks in flight at once.")
    ] = DEFAULT_CONCURRENCY,
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
    yes: YesOption = False,
    timeout: TimeoutOption = None,
) -> None:
    """Generate images for every prompt in a file, several tasks at a time.

    Example: soul batch prompts.txt --style Tokyo --concurrency 8 --json | jq -r .images[].path
    """
    from soulcli import ui
    from soulcli.batchfile import (
        BatchDefaults,
        BatchFileError,
        batch_key,
        decode_batch,
        parse_batch,
    )
    from soulcli.config import check_base_url, effective_settings, parse_ptc
    from soulcli.errors import ConfigError
    from soulcli.ledger import Ledger
    from soulcli.models import format_ptc

    settings = effective_settings()
    source = "stdin" if file == "-" else file
    data = read_batch_bytes(file)
    text = decode_batch(data, source)
    defaults = BatchDefaults(
        style=style if style is not None else settings.style,
        ar=ar if ar is not None else settings.aspect_ratio,
        quality=quality if quality is not None else settings.quality,
        seed=seed,
        negative=negative,
        enhance=enhance,
        out=str(out) if out is not None else settings.out_dir,
    )
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

    with Ledger.open() as ledger:
        key = batch_key(text, defaults)
        batch_id = ledger.find_batch(key)
        if resume and batch_id is None:
            raise UsageError(
                f"no earlier run of {source} with these options to resume",
                hint="run it without --resume to start it",
            )
        earlier = ledger.batch_tasks(batch_id) if batch_id is not None else {}
        plan = Plan.make(lines, earlier)
        cost = sum((line.request.price for line in plan.to_submit), Decimal(0))
        ui.say(
            f"soul: batch of {len(lines)} prompts from {source}: {len(plan.to_submit)} to "
            f"submit ({format_ptc(cost)} PTC), {len(plan.to_resume)} to resume, "
            f"{len(plan.done)} already done"
            + (f", {len(plan.unknown)} left alone (may have been charged)" if plan.unknown else "")
        )
        if ceiling is not None and cost > ceiling:
            raise SoulError(
                f"this batch would cost {format_ptc(cost)} PTC, above --max-cost "
                f"{format_ptc(ceiling)}; nothing was sent",
                exit_code=ExitCode.DECLINED,
            )
        if plan.to_submit:
            from soulcli.commands.generate import confirm_price

            confirm_price(cost, settings.confirm_above, yes=yes)
        for line in plan.to_submit + [item.line for item in plan.to_resume]:
            out_dir_of(line)  # create and check every output directory before paying
        for record, line in plan.done:
            emit_record(record, line, as_json=json_)
        results: list[tuple[BatchLine, str, str]] = [
            (line, record.state, record.error or "") for record, line in plan.done
        ]
        results += [
            (line, "outcome_unknown", record.error or "may have been charged")
            for record, line in plan.unknown
        ]
        work = plan.to_resume + [Item(line, None) for line in plan.to_submit]
        code = ExitCode.OK
        spent_now = Decimal(0)
        if work:
            from soulcli.commands.common import open_client

            with open_client(settings) as client:
                runner = Runner(
                    client,
                    ledger,
                    batch_id=batch_id or ledger.create_batch(key, source=source, lines=len(lines)),
                    api_host=check_base_url(settings.base_url),
                    concurrency=concurrency,
                    as_json=json_,
                    timeout=timeout or _default_timeout(),
                    already_done=len(plan.done),
                    total=len(lines),
                )
                results += runner.run(work)
                code = runner.stop_code
                spent_now = runner.progress.spent
    summarize(results, source, spent_now)
    if code != ExitCode.OK:
        raise SoulError(
            "batch stopped; run the same command again to resume it",
            hint="tasks in flight are kept in the ledger and will not be sent twice",
            exit_code=code,
        )
    if any(state != "completed" for _, state, _ in results):
        raise typer.Exit(int(ExitCode.BATCH_INCOMPLETE))


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


def out_dir_of(line: BatchLine) -> Path:
    from soulcli.downloads import prepare_out_dir

    return prepare_out_dir(Path(line.out or "."))


@dataclass
class Item:
    """One unit of work: a line to submit, or (with a record) one to resume."""

    line: BatchLine
    record: TaskRecord | None


@dataclass
class Plan:
    """What to do with each line, given what the ledger remembers of earlier runs."""

    to_submit: list[BatchLine]
    to_resume: list[Item]
    done: list[tuple[TaskRecord, BatchLine]]
    unknown: list[tuple[TaskRecord, BatchLine]]

    @classmethod
    def make(cls, lines: list[BatchLine], earlier: dict[int, TaskRecord]) -> Plan:
        plan = cls([], [], [], [])
        for line in lines:
            record = earlier.get(line.number)
            if record is None or (record.state == "failed" and record.remote_id is None):
                plan.to_submit.append(line)  # never sent (or refused): nothing was charged
            elif record.state in FINAL_STATES:
                plan.done.append((record, line))
            elif record.remote_id is not None:
                plan.to_resume.append(Item(line, record))
            else:
                plan.unknown.append((record, line))  # may have been charged: never re-sent
        return plan


def emit_record(record: TaskRecord, line: BatchLine, *, as_json: bool) -> None:
    """Print a line finished in an earlier run as if it had just finished."""
    from soulcli import ui
    from soulcli.commands.common import request_json

    if as_json:
        ui.emit_json(
            {
                "line": line.number,
                "task_id": record.remote_id,
                "status": record.state,
                **request_json(record.request()),
                "images": [i for i in record.images if i.get("path")],
                "missing": [i for i in record.images if not i.get("path")],
                "resumed": True,
            }
        )
    else:
        for path in record.saved_paths:
            ui.emit(path)


class Runner:
    """Runs items on worker threads behind an adaptive limit, sharing one connection pool."""

    def __init__(
        self,
        client: ApiClient,
        ledger: Ledger,
        *,
        batch_id: int,
        api_host: str,
        concurrency: int,
        as_json: bool,
        timeout: float,
        already_done: int,
        total: int,
    ) -> None:
        from soulcli import ui
        from soulcli.commands.batch_progress import BatchProgress
        from soulcli.limiter import AdaptiveLimit

        self.client = client
        self.ledger = ledger
        self.batch_id = batch_id
        self.api_host = api_host
        self.concurrency = concurrency
        self.as_json = as_json
        self.timeout = timeout
        self.stop = threading.Event()  # Ctrl-C: stop everything
        self.no_new_submits = threading.Event()  # a refusal that every later line would share
        self.limit: AdaptiveLimit = AdaptiveLimit(concurrency)
        self.progress: BatchProgress = BatchProgress(
            total, already_done=already_done, live=ui.stderr_is_terminal()
        )
        self.stop_code = ExitCode.OK
        client.on_rate_limited = self.limit.throttle

    def run(self, items: list[Item]) -> list[tuple[BatchLine, str, str]]:
        import queue
        from concurrent.futures import ThreadPoolExecutor

        from soulcli import ui
        from soulcli.downloads import ImageDownloader
        from soulcli.errors import Terminated

        pending: queue.SimpleQueue[Item] = queue.SimpleQueue()
        for item in items:
            pending.put(item)
        results: list[tuple[BatchLine, str, str]] = []
        lock = threading.Lock()

        def worker(downloader: ImageDownloader) -> None:
            while not self.stop.is_set():
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    return
                outcome = self._one(item, downloader)
                with lock:
                    results.append(outcome)

        with ImageDownloader() as downloader, self._display():
            workers = min(self.concurrency, len(items))
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="soul-batch")
            futures = [pool.submit(worker, downloader) for _ in range(workers)]
            try:
                for future in futures:
                    while True:
                        try:
                            future.result(timeout=0.2)  # short waits keep Ctrl-C responsive
                            break
                        except TimeoutError:
                            continue
            except (KeyboardInterrupt, Terminated) as exc:
                self.stop.set()
                terminated = isinstance(exc, Terminated)
                self.stop_code = ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED
                ui.say("soul: stopping: tasks in flight stay in the ledger")
            pool.shutdown(wait=True)
        while True:
            try:
                item = pending.get_nowait()
            except queue.Empty:
                break
            results.append((item.line, "not started", "the batch was stopped"))
        return results

    def _display(self) -> Any:
        from contextlib import nullcontext

        if not self.progress.live:
            return nullcontext()
        from rich.live import Live

        from soulcli import ui

        return Live(
            self.progress, console=ui.stderr_console(), refresh_per_second=4, transient=True
        )

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise KeyboardInterrupt  # ends this task's wait like Ctrl-C would, in this thread

    def _one(self, item: Item, downloader: ImageDownloader) -> tuple[BatchLine, str, str]:
        from soulcli.errors import (
            AuthError,
            BalanceError,
            MaybeChargedError,
            TaskStoppedError,
            UnreachableError,
        )

        line = item.line
        if item.record is None and self.no_new_submits.is_set():
            return line, "not sent", "an earlier line was refused"
        if not self.limit.acquire(self.stop):
            return line, "not started", "the batch was stopped"
        self.progress.started(
            line.number, line.request.prompt, item.record.remote_id if item.record else None
        )
        try:
            outcome = self._submit_and_follow(item, downloader)
        except MaybeChargedError as exc:
            self.progress.finished(line.number, "outcome_unknown", exc.message)
            return line, "outcome_unknown", exc.message
        except TaskStoppedError as exc:
            state = "timed_out" if exc.exit_code == ExitCode.TIMEOUT else "interrupted"
            self.progress.finished(line.number, state, exc.message)
            return line, state, exc.message
        except (AuthError, BalanceError, UnreachableError) as exc:
            self.no_new_submits.set()
            self.progress.finished(line.number, "failed", exc.message)
            return line, "failed", exc.message
        except SoulError as exc:
            self.progress.finished(line.number, "failed", exc.message)
            return line, "failed", exc.message
        finally:
            self.limit.release()
        state = outcome.status
        detail = ", ".join(f"image {m.index}: {m.status}" for m in outcome.missing)
        self.progress.finished(line.number, state, detail)
        self._emit(line, outcome)
        return line, state, detail

    def _submit_and_follow(self, item: Item, downloader: ImageDownloader) -> Outcome:
        from soulcli.commands.common import FollowOptions, Tracked, follow_task
        from soulcli.models import format_ptc
        from soulcli.submit import submit_recorded

        line = item.line
        out_dir = out_dir_of(line)
        if item.record is not None and item.record.remote_id is not None:
            local_id, task_id = item.record.id, item.record.remote_id
        else:
            local_id, task_id = submit_recorded(
                self.client,
                self.ledger,
                line.request,
                out_dir=str(out_dir),
                api_host=self.api_host,
                batch_id=self.batch_id,
                batch_line=line.number,
                image_stem=line.name,
            )
            self.progress.submitted(line.number, task_id, line.request.price)
        options = FollowOptions(
            show_spinner=False,
            on_update=lambda snapshot: self.progress.updated(line.number, snapshot),
            sleep=self._sleep,
            stem=line.name,
            downloader=downloader,
            just_submitted=item.record is None,
        )
        return follow_task(
            self.client,
            task_id,
            out_dir=out_dir,
            timeout=self.timeout,
            price=format_ptc(line.request.price),
            tracked=Tracked(self.ledger, local_id, line.request),
            options=options,
        )

    def _emit(self, line: BatchLine, outcome: Outcome) -> None:
        from soulcli import ui
        from soulcli.commands.common import request_json

        if self.as_json:
            ui.emit_json(
                {
                    "line": line.number,
                    "task_id": outcome.snapshot.task_id,
                    "status": outcome.status,
                    **request_json(line.request),
                    "images": outcome.images_json(),
                    "missing": outcome.missing_json(),
                }
            )
        else:
            for image in outcome.saved:
                ui.emit(str(image.path))


def summarize(results: list[tuple[BatchLine, str, str]], source: str, spent_now: Decimal) -> None:
    """A summary on stderr: counts by state, spend, and every line that did not complete."""
    from soulcli import ui
    from soulcli.models import format_ptc
    from soulcli.text import one_line, shorten

    by_state: dict[str, int] = {}
    for _, state, _ in results:
        by_state[state] = by_state.get(state, 0) + 1
    ui.say(
        f"soul: batch {source}: {len(results)} lines, {format_ptc(spent_now)} PTC spent by this run"
    )
    ui.say(f"soul:   {'state':<16} {'lines':>5}")
    for state, count in sorted(by_state.items()):
        ui.say(f"soul:   {state:<16} {count:>5}")
    for line, state, detail in sorted(results, key=lambda r: r[0].number):
        if state != "completed":
            ui.say(
                f"soul:   line {line.number} {state}: {shorten(line.request.prompt, 40)!r}"
                + (f" ({one_line(detail, 160)})" if detail else "")
            )


app = new_app()
app.command()(batch)
