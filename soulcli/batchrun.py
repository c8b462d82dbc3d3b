"""Running a batch: its lines on worker threads, each claimed in the ledger before its POST.

The core of `soul batch` and `Soul.batch`: it prints nothing. What happens is told to
`BatchEvents`, which counts; the CLI's subclass draws the live display and prints each
finished line, the library's hands each result to the caller.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from soulcli.errors import ExitCode, SoulError
from soulcli.follow import Watcher

if TYPE_CHECKING:
    from collections.abc import Callable

    from soulcli.batchfile import BatchLine
    from soulcli.batchplan import Item, Plan
    from soulcli.client import ApiClient
    from soulcli.config import Settings
    from soulcli.downloads import ImageDownloader
    from soulcli.follow import Outcome
    from soulcli.ledger import Ledger, TaskRecord
    from soulcli.limiter import AdaptiveLimit
    from soulcli.models import GenerationRequest, TaskSnapshot

DEFAULT_CONCURRENCY = 4
RUNNING_ELSEWHERE = "running elsewhere"
UNRECORDED = "unrecorded"
OUTCOME_UNKNOWN = "outcome_unknown"


@dataclass
class LineResult:
    """How one line of a batch stands at the end of this run.

    `outcome` is set for a task this run followed, `earlier` for a line an earlier
    run finished (its images are already on disk); `request` for both.
    """

    line: BatchLine
    state: str
    detail: str = ""
    outcome: Outcome | None = None
    earlier: TaskRecord | None = None
    request: GenerationRequest | None = None
    # The line's ledger row and task, once it has them (a timed-out line can be waited for).
    local_id: int | None = None
    task_id: str | None = None


class BatchEvents:
    """Told what a running batch does, from its worker threads; counts lines and spend."""

    def __init__(self, total: int, *, already_done: int = 0) -> None:
        self.total = total
        self.already_done = already_done
        self.completed = already_done
        self.failed = 0
        self.spent = Decimal(0)
        self._lock = threading.Lock()

    def started(self, number: int, prompt: str, resumed_task: str | None) -> None:
        """A worker took line `number` (to send it, or to resume `resumed_task`)."""

    def charged(self, price: Decimal) -> None:
        """Count a request the server took, whatever happens to it next."""
        with self._lock:
            self.spent += price

    def submitted(self, number: int, task_id: str, price: Decimal) -> None:
        self.charged(price)

    def updated(self, number: int, snapshot: TaskSnapshot) -> None:
        """A poll of line `number`'s task answered."""

    def finished(self, number: int, state: str, detail: str) -> None:
        with self._lock:
            self._count(state)

    def _count(self, state: str) -> None:
        """Count a finished line (the caller holds the lock)."""
        if state == "completed":
            self.completed += 1
        else:
            self.failed += 1

    def result(self, result: LineResult) -> None:
        """A line is settled: finished by this run, or found finished by an earlier one."""

    def around_run(self) -> AbstractContextManager[object]:
        """A context around the whole run (the CLI's live display)."""
        return nullcontext()

    def stopping(self) -> None:
        """Ctrl-C or SIGTERM reached the run: the workers stop at their next safe point."""

    def watcher(self, number: int) -> Watcher:
        """What follows line `number`'s task: it passes its polls on to `updated`."""
        return LineWatcher(self, number)


class LineWatcher(Watcher):
    """Follows one batch line's task for `BatchEvents`."""

    def __init__(self, events: BatchEvents, number: int) -> None:
        self.events = events
        self.number = number

    def updated(self, snapshot: TaskSnapshot) -> None:
        self.events.updated(self.number, snapshot)


def out_dir_of(line: BatchLine, *, before_sending: bool = False) -> Path:
    """A line's output directory, created and checked (the run checks them all before
    its first request: `before_sending`)."""
    from soulcli.outdir import prepare_before_sending, prepare_out_dir

    prepare = prepare_before_sending if before_sending else prepare_out_dir
    return prepare(Path(line.out or "."))


def settled_results(plan: Plan) -> list[LineResult]:
    """The lines this run does not send: done earlier, running elsewhere, or maybe charged."""
    results = [
        _held_by(record, line, record.state, record.error or "") for record, line in plan.done
    ]
    results += [
        _held_by(record, line, RUNNING_ELSEWHERE, elsewhere(record))
        for record, line in plan.elsewhere
    ]
    results += [
        _held_by(record, line, OUTCOME_UNKNOWN, record.error or "may have been charged")
        for record, line in plan.unknown
    ]
    return results


def _held_by(record: TaskRecord, line: BatchLine, state: str, detail: str) -> LineResult:
    """The result of a line whose ledger row is `record` (from this run or an earlier one);
    a finished row is `earlier`, with its request."""
    from soulcli.ledger import FINAL

    finished = record.state in FINAL
    return LineResult(
        line,
        state,
        detail,
        earlier=record if finished else None,
        request=record.request() if finished else None,
        local_id=record.id,
        task_id=record.remote_id,
    )


def elsewhere(record: TaskRecord) -> str:
    pid = record.owner.pid if record.owner is not None else "?"
    return f"soul process {pid} is running it; it is not sent twice"


def run_plan(
    plan: Plan,
    *,
    ledger: Ledger,
    settings: Settings,
    batch_id: int | None,
    key: str,
    source: str,
    total: int,
    concurrency: int,
    timeout: float,
    events: BatchEvents,
    on_start: Callable[[Runner], None] | None = None,
) -> tuple[list[LineResult], ExitCode]:
    """Send the plan's new lines and resume its unfinished ones; every line's result.

    Every output directory is created and checked before anything is paid for. The
    lines an earlier run finished go to `events.result` first, as if just finished.
    The exit code is that of a stop (Ctrl-C, SIGTERM), else OK. `on_start` is given
    the runner before it starts, so that a caller can stop it.
    """
    from soulcli.batchplan import Item
    from soulcli.config import check_base_url
    from soulcli.follow import open_client

    for line in plan.new + [item.line for item in plan.to_resume]:
        out_dir_of(line, before_sending=True)
    results = settled_results(plan)
    for result in results:
        if result.earlier is not None:
            events.result(result)
    work = plan.to_resume + [Item(line) for line in plan.new]
    if not work:
        return results, ExitCode.OK
    with open_client(settings) as client:
        runner = Runner(
            client,
            ledger,
            batch_id=batch_id or ledger.create_batch(key, source=source, lines=total),
            api_host=check_base_url(settings.base_url),
            concurrency=concurrency,
            timeout=timeout,
            events=events,
        )
        if on_start is not None:
            on_start(runner)
        results += runner.run(work)
    return results, runner.stop_code


class Settled(Exception):
    """A line this run does not send after all: how it stands, for the summary."""

    def __init__(self, result: LineResult) -> None:
        super().__init__(result.state)
        self.result = result


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
        timeout: float,
        events: BatchEvents,
    ) -> None:
        from soulcli.limiter import AdaptiveLimit

        self.client = client
        self.ledger = ledger
        self.batch_id = batch_id
        self.api_host = api_host
        self.concurrency = concurrency
        self.timeout = timeout
        self.events = events
        self.stop = threading.Event()  # Ctrl-C, or the caller: stop everything
        # A refusal that every later line would share (bad key, no balance, a ledger that
        # cannot be written): once set, no new line is sent; `why_no_new` says why.
        self.no_new_submits = threading.Event()
        self.why_no_new = ""
        self.limit: AdaptiveLimit = AdaptiveLimit(concurrency)
        self.stop_code = ExitCode.OK
        # Each line's (ledger row, task id) once known, for its result whatever happens.
        self.ids: dict[int, tuple[int, str]] = {}
        client.on_rate_limited = self.limit.throttle
        client.sleep = self._sleep  # a retry's back-off ends when the batch is stopped

    def run(self, items: list[Item]) -> list[LineResult]:
        """Run every item; on a stop (Ctrl-C here, or `stop` set), what was not started."""
        import queue
        from concurrent.futures import ThreadPoolExecutor

        from soulcli.downloads import ImageDownloader
        from soulcli.errors import STOPS, stop_exit_code

        pending: queue.SimpleQueue[Item] = queue.SimpleQueue()
        for item in items:
            pending.put(item)
        results: list[LineResult] = []
        lock = threading.Lock()

        failures: list[BaseException] = []

        def worker(downloader: ImageDownloader) -> None:
            try:
                while not self.stop.is_set():
                    try:
                        item = pending.get_nowait()
                    except queue.Empty:
                        return
                    result = self._one(item, downloader)
                    with lock:
                        results.append(result)
                    self.events.result(result)
            except BaseException as exc:  # stdout closed (SystemExit 141), or a bug in soul
                # Stop every other worker at its next safe point before anything else.
                self.stop.set()
                self._stop_new_submits("the batch was stopped")
                with lock:
                    failures.append(exc)

        with ImageDownloader() as downloader, self.events.around_run():
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
                self.events.stopping()
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
            results.append(LineResult(item.line, "not started", "the batch was stopped"))
        return results

    def _sleep(self, seconds: float) -> None:
        from soulcli.errors import Interrupted

        if self.stop.wait(seconds):
            raise Interrupted()  # ends this task's wait like Ctrl-C would, in this thread

    def _stop_new_submits(self, why: str) -> None:
        self.why_no_new = self.why_no_new or why
        self.no_new_submits.set()

    def _one(self, item: Item, downloader: ImageDownloader) -> LineResult:
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
        events = self.events
        if item.record is None and self.no_new_submits.is_set():
            return LineResult(line, "not sent", self.why_no_new)
        if not self.limit.acquire(self.stop):
            return LineResult(line, "not started", "the batch was stopped")
        events.started(
            line.number, line.request.prompt, item.record.remote_id if item.record else None
        )
        try:
            outcome, request = self._submit_and_follow(item, downloader)
        except Settled as settled:
            result = settled.result
        except MaybeChargedError as exc:
            result = LineResult(line, OUTCOME_UNKNOWN, exc.message)
        except TaskUnrecordedError as exc:
            # Charged, but the ledger cannot be written: send nothing more, say the id.
            self._stop_new_submits("the task ledger cannot be written")
            events.charged(line.request.price)
            detail = f"task {exc.task_id} was charged but not recorded; {exc.hint}"
            result = LineResult(line, UNRECORDED, detail, task_id=exc.task_id)
        except TaskStoppedError as exc:
            state = "timed_out" if exc.exit_code == ExitCode.TIMEOUT else "interrupted"
            result = LineResult(line, state, exc.message)
        except (AuthError, BalanceError, UnreachableError, ConfigError) as exc:
            self._stop_new_submits(f"an earlier line failed: {exc.message}")
            result = LineResult(line, "failed", exc.message)
        except SoulError as exc:
            result = LineResult(line, "failed", exc.message)
        else:
            detail = ", ".join(f"image {m.index}: {m.status}" for m in outcome.missing)
            result = LineResult(line, outcome.status, detail, outcome=outcome, request=request)
        finally:
            self.limit.release()
        if line.number in self.ids and result.task_id is None:
            result.local_id, result.task_id = self.ids[line.number]
        events.finished(line.number, result.state, result.detail)
        return result

    def _submit_and_follow(
        self, item: Item, downloader: ImageDownloader
    ) -> tuple[Outcome, GenerationRequest]:
        """Claim and send a new line (or take over a resumed one), then follow its task."""
        from soulcli.follow import FollowOptions, Tracked, follow_task
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
                self.events.submitted(line.number, task_id, line.request.price)
        if item.record is not None:
            standing = self.ledger.take_over(item.record.id)
            if standing is not None:  # followed by another soul, or finished a moment ago
                self._claimed_elsewhere(line, standing)  # raises Settled: nothing to resume
            local_id, task_id = item.record.id, str(item.record.remote_id)
        self.ids[line.number] = (local_id, task_id)
        request = item.request
        options = FollowOptions(
            watcher=self.events.watcher(line.number),
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
            result = _held_by(record, line, record.state, record.error or "")
        elif kind == ELSEWHERE:
            result = _held_by(record, line, RUNNING_ELSEWHERE, elsewhere(record))
        else:
            result = _held_by(
                record, line, OUTCOME_UNKNOWN, record.error or "may have been charged"
            )
        raise Settled(result)
