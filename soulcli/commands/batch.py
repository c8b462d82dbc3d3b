"""`soul batch`: many prompts at once, concurrently, resumably, with zero duplicate POSTs."""

from __future__ import annotations

import sys
import threading
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
    from soulcli.batchplan import Item, Plan
    from soulcli.client import ApiClient
    from soulcli.commands.batch_progress import BatchProgress
    from soulcli.commands.common import Outcome
    from soulcli.downloads import ImageDownloader
    from soulcli.ledger import Ledger, TaskRecord
    from soulcli.limiter import AdaptiveLimit
    from soulcli.models import GenerationRequest

DEFAULT_CONCURRENCY = 4
RUNNING_ELSEWHERE = "running elsewhere"
UNRECORDED = "unrecorded"


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
    from soulcli import ui
    from soulcli.batchfile import (
        BatchDefaults,
        BatchFileError,
        batch_key,
        decode_batch,
        parse_batch,
    )
    from soulcli.batchplan import Item, make_plan
    from soulcli.config import check_base_url, effective_settings, parse_ptc
    from soulcli.errors import ConfigError
    from soulcli.ledger import Ledger
    from soulcli.models import SUBMIT_PATH, format_ptc

    if resume and again:
        raise UsageError("--resume and --again contradict each other; choose one")
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
    if dry_run:
        url = check_base_url(settings.base_url) + SUBMIT_PATH
        plan = dry_run_plan(lines, batch_key(text, defaults), again=again)
        print_dry_run(plan.new if plan else lines, source, url=url, as_json=json_)
        total = plan.cost if plan else sum((ln.request.price for ln in lines), Decimal(0))
        what = describe_plan(plan) if plan else f"{len(lines)} new ({format_ptc(total)} PTC)"
        ui.say(f"soul: dry run of {source} (POST {url}): {what}; nothing was sent")
        return

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

            confirm_price(cost, settings.confirm_above, yes=yes)
        for line in plan.new + [item.line for item in plan.to_resume]:
            out_dir_of(line)  # create and check every output directory before paying
        for record, line in plan.done:
            emit_record(record, line, as_json=json_)
        results: list[tuple[BatchLine, str, str]] = [
            (line, record.state, record.error or "") for record, line in plan.done
        ]
        results += [(line, RUNNING_ELSEWHERE, elsewhere(record)) for record, line in plan.elsewhere]
        results += [
            (line, "outcome_unknown", record.error or "may have been charged")
            for record, line in plan.unknown
        ]
        work = plan.to_resume + [Item(line) for line in plan.new]
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
    if any(state == UNRECORDED for _, state, _ in results):
        raise typer.Exit(int(ExitCode.UNRECORDED))
    if any(state != "completed" for _, state, _ in results):
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


def elsewhere(record: TaskRecord) -> str:
    pid = record.owner.pid if record.owner is not None else "?"
    return f"soul process {pid} is running it; it is not sent twice"


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


class Settled(Exception):
    """A line this run does not send after all: how it stands, for the summary."""

    def __init__(self, state: str, detail: str) -> None:
        super().__init__(state)
        self.state = state
        self.detail = detail


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
        # A refusal that every later line would share (bad key, no balance, a ledger that
        # cannot be written): once set, no new line is sent; `why_no_new` says why.
        self.no_new_submits = threading.Event()
        self.why_no_new = ""
        self.limit: AdaptiveLimit = AdaptiveLimit(concurrency)
        self.progress: BatchProgress = BatchProgress(
            total, already_done=already_done, live=ui.stderr_is_terminal()
        )
        self.stop_code = ExitCode.OK
        client.on_rate_limited = self.limit.throttle
        client.sleep = self._sleep  # a retry's back-off ends when the batch is stopped

    def run(self, items: list[Item]) -> list[tuple[BatchLine, str, str]]:
        import queue
        from concurrent.futures import ThreadPoolExecutor

        from soulcli import ui
        from soulcli.downloads import ImageDownloader
        from soulcli.errors import STOPS, stop_exit_code

        pending: queue.SimpleQueue[Item] = queue.SimpleQueue()
        for item in items:
            pending.put(item)
        results: list[tuple[BatchLine, str, str]] = []
        lock = threading.Lock()

        failures: list[BaseException] = []

        def worker(downloader: ImageDownloader) -> None:
            try:
                while not self.stop.is_set():
                    try:
                        item = pending.get_nowait()
                    except queue.Empty:
                        return
                    outcome = self._one(item, downloader)
                    with lock:
                        results.append(outcome)
            except BaseException as exc:  # stdout closed (SystemExit 141), or a bug in soul
                # Stop every other worker at its next safe point before anything else.
                self.stop.set()
                self._stop_new_submits("the batch was stopped")
                with lock:
                    failures.append(exc)

        with ImageDownloader() as downloader, self._display():
            workers = min(self.concurrency, len(items))
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="soul-batch")
            try:
                # Started inside the try: a Ctrl-C between two starts still stops them all.
                futures = []
                for _ in range(workers):
                    futures.append(pool.submit(worker, downloader))
                for future in futures:
                    while True:
                        try:
                            future.result(timeout=0.2)  # short waits keep Ctrl-C responsive
                            break
                        except TimeoutError:
                            continue
            except STOPS as stop:
                self.stop_code = stop_exit_code(stop)
                ui.say("soul: stopping: tasks in flight stay in the ledger")
            finally:
                # Whatever ended the wait, no worker may outlive the client, the image
                # pool and the ledger connection it uses.
                self.stop.set()
                pool.shutdown(wait=True)
        if failures:
            raise failures[0]  # after every worker stopped: 141 for a closed stdout, or a bug
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
            self.progress,
            console=ui.stderr_console(),
            refresh_per_second=4,
            transient=True,
            # Rich would print what goes to stdout above the display, on stderr: only
            # right when stdout is that terminal too. Redirected, the paths are data.
            redirect_stdout=sys.stdout.isatty(),
        )

    def _sleep(self, seconds: float) -> None:
        from soulcli.errors import Interrupted

        if self.stop.wait(seconds):
            raise Interrupted()  # ends this task's wait like Ctrl-C would, in this thread

    def _stop_new_submits(self, why: str) -> None:
        self.why_no_new = self.why_no_new or why
        self.no_new_submits.set()

    def _one(self, item: Item, downloader: ImageDownloader) -> tuple[BatchLine, str, str]:
        from soulcli.errors import (
            AuthError,
            BalanceError,
            ConfigError,
            MaybeChargedError,
            TaskStoppedError,
            TaskUnrecordedError,
            UnreachableError,
        )

        line = item.line
        if item.record is None and self.no_new_submits.is_set():
            return line, "not sent", self.why_no_new
        if not self.limit.acquire(self.stop):
            return line, "not started", "the batch was stopped"
        self.progress.started(
            line.number, line.request.prompt, item.record.remote_id if item.record else None
        )
        try:
            outcome, request = self._submit_and_follow(item, downloader)
        except Settled as settled:
            self.progress.finished(line.number, settled.state, settled.detail)
            return line, settled.state, settled.detail
        except MaybeChargedError as exc:
            self.progress.finished(line.number, "outcome_unknown", exc.message)
            return line, "outcome_unknown", exc.message
        except TaskUnrecordedError as exc:
            # Charged, but the ledger cannot be written: send nothing more, say the id.
            self._stop_new_submits("the task ledger cannot be written")
            self.progress.charged(line.request.price)
            detail = f"task {exc.task_id} was charged but not recorded; {exc.hint}"
            self.progress.finished(line.number, UNRECORDED, detail)
            return line, UNRECORDED, detail
        except TaskStoppedError as exc:
            state = "timed_out" if exc.exit_code == ExitCode.TIMEOUT else "interrupted"
            self.progress.finished(line.number, state, exc.message)
            return line, state, exc.message
        except (AuthError, BalanceError, UnreachableError, ConfigError) as exc:
            self._stop_new_submits(f"an earlier line failed: {exc.message}")
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
        self._emit(line, request, outcome)
        return line, state, detail

    def _submit_and_follow(
        self, item: Item, downloader: ImageDownloader
    ) -> tuple[Outcome, GenerationRequest]:
        """Claim and send a new line (or take over a resumed one), then follow its task."""
        from soulcli.commands.common import FollowOptions, Tracked, follow_task
        from soulcli.ledger import AlreadyClaimed
        from soulcli.models import format_ptc
        from soulcli.submit import submit_recorded

        line = item.line
        out_dir = out_dir_of(line)
        if item.record is None:
            try:
                local_id, task_id = submit_recorded(
                    self.client,
                    self.ledger,
                    line.request,
                    out_dir=str(out_dir),
                    api_host=self.api_host,
                    batch_id=self.batch_id,
                    batch_line=line.number,
                    image_stem=line.name,
                    line_key=line.key,
                )
            except AlreadyClaimed as claimed:
                # Another run claimed the line after this one planned it.
                item = self._claimed_elsewhere(line, claimed.record)
            else:
                self.progress.submitted(line.number, task_id, line.request.price)
        if item.record is not None:
            standing = self.ledger.take_over(item.record.id)
            if standing is not None:  # followed by another soul, or finished a moment ago
                self._claimed_elsewhere(line, standing)  # raises Settled: nothing to resume
            local_id, task_id = item.record.id, str(item.record.remote_id)
        request = item.request
        options = FollowOptions(
            show_spinner=False,
            on_update=lambda snapshot: self.progress.updated(line.number, snapshot),
            sleep=self._sleep,
            stem=line.name,
            downloader=downloader,
            just_submitted=item.record is None,
        )
        outcome = follow_task(
            self.client,
            task_id,
            out_dir=out_dir,
            timeout=self.timeout,
            price=format_ptc(request.price),
            tracked=Tracked(self.ledger, local_id, request),
            options=options,
        )
        return outcome, request

    def _claimed_elsewhere(self, line: BatchLine, record: TaskRecord) -> Item:
        """A line another run has: resume what it left, or raise Settled with how it stands."""
        from soulcli.batchplan import DONE, ELSEWHERE, RESUME, Item, holder_kind

        kind = holder_kind(record)
        if kind == RESUME:
            return Item(line, record)
        if kind == DONE:
            emit_record(record, line, as_json=self.as_json)
            raise Settled(record.state, record.error or "")
        if kind == ELSEWHERE:
            raise Settled(RUNNING_ELSEWHERE, elsewhere(record))
        raise Settled("outcome_unknown", record.error or "may have been charged")

    def _emit(self, line: BatchLine, request: GenerationRequest, outcome: Outcome) -> None:
        from soulcli import ui
        from soulcli.commands.common import request_json

        if self.as_json:
            ui.emit_json(
                {
                    "line": line.number,
                    "task_id": outcome.snapshot.task_id,
                    "status": outcome.status,
                    **request_json(request),
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
    width = max([16, *(len(state) for state in by_state)])
    ui.say(f"soul:   {'state':<{width}} {'lines':>5}")
    for state, count in sorted(by_state.items()):
        ui.say(f"soul:   {state:<{width}} {count:>5}")
    for line, state, detail in sorted(results, key=lambda r: r[0].number):
        if state != "completed":
            ui.say(
                f"soul:   line {line.number} {state}: {shorten(line.request.prompt, 40)!r}"
                + (f" ({one_line(detail, 300)})" if detail else "")
            )


app = new_app()
app.command()(batch)
