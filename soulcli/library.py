"""`Soul`: soul as a Python library, with the CLI's guarantees and none of its printing.

Every task goes through the same ledger as the CLI (a row before the POST, the task
id right after, never a POST sent twice), images are written atomically with their
sidecars, and the API key goes to the API host only. Errors are the `SoulError`
family; nothing is printed. Progress can be watched with a `Watcher`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soulcli import signals
from soulcli.errors import ExitCode, SoulError, UsageError
from soulcli.follow import Watcher

# A library prints nothing: its warnings reach stderr only if the program asks for them.
logging.getLogger("soulcli").addHandler(logging.NullHandler())
# Nor does it end its program: a second Ctrl-C while a task id is recorded waits for it.
signals.second_stop_exits = False

if TYPE_CHECKING:
    from soulcli.batchplan import Plan
    from soulcli.batchrun import LineResult
    from soulcli.catalog import Style
    from soulcli.client import ApiClient
    from soulcli.config import Settings
    from soulcli.follow import Outcome
    from soulcli.ledger import Ledger, TaskRecord
    from soulcli.models import GenerationRequest


@dataclass(frozen=True)
class MissingImage:
    """An image of a task that was not saved: its index, why (`nsfw`, `failed`, ...)."""

    index: int
    status: str
    reason: str = ""


@dataclass(frozen=True)
class Task:
    """A submitted task: its id, the ledger row that records it, what was asked."""

    task_id: str
    local_id: int
    request: GenerationRequest
    out_dir: Path
    name: str | None = None

    @property
    def cost_ptc(self) -> Decimal:
        return self.request.price


@dataclass(frozen=True)
class Result:
    """A task as it stands: its images on disk, what is missing, the request and its price.

    `status` is `completed`, `partial` (some images missing) or `failed` (none) once
    the task is over; while it runs (a `fetch` without waiting) it is the task's phase,
    such as `queued` or `in_progress`, and `finished` is False.
    """

    task_id: str
    status: str
    images: list[Path]
    missing: list[MissingImage]
    request: GenerationRequest | None
    finished: bool = True
    local_id: int | None = None
    out_dir: Path | None = None
    line: int | None = None  # the batch line it came from, in `Soul.batch`
    error: str = ""  # a batch line that was not sent, or failed: why

    @property
    def cost_ptc(self) -> Decimal:
        """What the task cost (0 for a task soul did not submit: its price is unknown)."""
        return self.request.price if self.request is not None else Decimal(0)

    @property
    def prompt(self) -> str | None:
        return self.request.prompt if self.request is not None else None

    @property
    def style(self) -> str | None:
        return self.request.style_name if self.request is not None else None

    @property
    def seed(self) -> int | None:
        return self.request.seed if self.request is not None else None

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON object: the fields of the CLI's `--json` (the request,
        `cost_ptc`), with `images` as a list of paths."""
        from soulcli.sidecar import request_fields

        payload: dict[str, Any] = {"task_id": self.task_id, "status": self.status}
        if self.request is not None:
            payload.update(request_fields(self.request))
            payload["cost_ptc"] = float(self.request.price)
        payload["images"] = [str(path) for path in self.images]
        payload["missing"] = [
            {"index": m.index, "status": m.status, "reason": m.reason} for m in self.missing
        ]
        if self.line is not None:
            payload["line"] = self.line
        return payload


class Soul:
    """Generate, wait, fetch, list styles and history, run batches: the CLI's core.

    Settings not given here come from where the CLI takes them: the environment
    (`SOUL_API_KEY`, `SOUL_BASE_URL`, `SOUL_DATA_DIR`), then the config file, then
    the defaults. `out_dir` is where images go when a call gives no `out`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        data_dir: str | Path | None = None,
        *,
        out_dir: str | Path | None = None,
        style: str | None = None,
        aspect_ratio: str | None = None,
        quality: str | None = None,
        timeout: float | None = None,
        watcher: Watcher | None = None,
    ) -> None:
        from soulcli.config import effective_settings

        settings = effective_settings()
        overrides: dict[str, Any] = {
            "api_key": api_key,
            "base_url": base_url,
            "out_dir": str(out_dir) if out_dir is not None else None,
            "style": style,
            "aspect_ratio": aspect_ratio,
            "quality": quality,
        }
        self.settings: Settings = replace(
            settings, **{k: v for k, v in overrides.items() if v is not None}
        )
        self.data_dir = Path(data_dir).expanduser() if data_dir is not None else None
        self.timeout = timeout
        self.watcher = watcher or Watcher()

    def __repr__(self) -> str:  # never the key
        return f"Soul(base_url={self.settings.base_url!r})"

    # -- requests and prices -----------------------------------------------------------

    def request(
        self,
        prompt: str,
        *,
        style: str | None = None,
        ar: str | None = None,
        quality: str | None = None,
        seed: int | None = None,
        negative: str | None = None,
        enhance: bool | None = None,
    ) -> GenerationRequest:
        """The checked request a generate would send (style resolved, seed picked); no network."""
        from soulcli.request_builder import build_request, check_prompt

        _expect(prompt, str, "the prompt", required=True)
        for value, what in ((style, "style"), (ar, "ar"), (quality, "quality")):
            _expect(value, str, what)
        _expect(negative, str, "negative")
        _expect(seed, int, "seed")
        _expect(enhance, bool, "enhance")

        return build_request(
            check_prompt(prompt),
            style=style if style is not None else self.settings.style,
            ar=ar if ar is not None else self.settings.aspect_ratio,
            quality=quality if quality is not None else self.settings.quality,
            seed=seed,
            negative=negative,
            enhance=enhance,
        )

    @staticmethod
    def price(quality: str = "720p", count: int = 1) -> Decimal:
        """What `count` requests (4 images each) cost at `quality`, in PTC."""
        from soulcli.models import normalize_quality, price_of

        _expect(quality, str, "quality", required=True)
        _expect(count, int, "count", required=True)
        tier = normalize_quality(quality)
        if tier is None:
            raise UsageError(f"unknown quality {quality!r}", hint="use 720p or 1080p")
        if count < 0:
            raise UsageError(f"count must be 0 or more, not {count}")
        return price_of(tier, count)

    @staticmethod
    def styles(search: str | None = None) -> list[Style]:
        """The style catalog (60 styles), or those whose name contains `search`."""
        from soulcli.catalog import load_styles, search_styles

        _expect(search, str, "search")
        return search_styles(search) if search else list(load_styles())

    # -- generating ----------------------------------------------------------------------

    def generate(
        self,
        prompt: str | GenerationRequest,
        *,
        style: str | None = None,
        ar: str | None = None,
        quality: str | None = None,
        seed: int | None = None,
        negative: str | None = None,
        enhance: bool | None = None,
        out: str | Path | None = None,
        name: str | None = None,
        timeout: float | None = None,
    ) -> Result:
        """Submit one prompt (or a request from `request`), wait for its 4 images and save
        them; like `soul generate`.

        The result says what was saved and what is missing (`nsfw`, a failed download,
        ...): an unfinished task is not an exception. A timeout or a stop raises
        `TaskStoppedError` with the task id; the task is in the ledger, for `wait`.
        """
        limit = self._timeout(timeout)  # checked before anything is sent
        request = self._as_request(
            prompt,
            style=style,
            ar=ar,
            quality=quality,
            seed=seed,
            negative=negative,
            enhance=enhance,
        )
        with self._client() as client, self._ledger() as ledger:
            task = self._submit(client, ledger, request, out=out, name=name)
            return self._follow(client, ledger, task, timeout=limit, just_submitted=True)

    def submit(
        self,
        prompt: str | GenerationRequest,
        *,
        style: str | None = None,
        ar: str | None = None,
        quality: str | None = None,
        seed: int | None = None,
        negative: str | None = None,
        enhance: bool | None = None,
        out: str | Path | None = None,
        name: str | None = None,
    ) -> Task:
        """Send one request and return its task at once (recorded in the ledger first)."""
        request = self._as_request(
            prompt,
            style=style,
            ar=ar,
            quality=quality,
            seed=seed,
            negative=negative,
            enhance=enhance,
        )
        with self._client() as client, self._ledger() as ledger:
            task = self._submit(client, ledger, request, out=out, name=name)
            # Not followed here: `soul fetch`, or another process, may finish it.
            _let_go(ledger, task.local_id)
            return task

    def wait(
        self, task: Task | str | int, *, out: str | Path | None = None, timeout: float | None = None
    ) -> Result:
        """Wait for a task (a `Task`, a task id, or a local id from `history`) and save it.

        A task soul submitted goes into the directory it was submitted with unless
        `out` is given; another into `out`, else the default directory. Another soul
        process following the task is an error: it saves the images itself.
        """
        return self._fetch(task, out=out, wait=True, timeout=timeout)

    def fetch(
        self,
        task: Task | str | int,
        *,
        out: str | Path | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Result:
        """Look at a task once and save what is finished (with `wait`, wait for the rest).

        A finished task whose images are all on disk is answered from the ledger,
        without the network.
        """
        return self._fetch(task, out=out, wait=wait, timeout=timeout)

    def history(
        self, limit: int | None = 20, *, search: str | None = None, state: str | None = None
    ) -> list[TaskRecord]:
        """Ledger rows, newest first: what was sent, what it cost, where its images are."""
        from soulcli.ledger import STATES

        _expect(limit, int, "limit")
        _expect(search, str, "search")
        if limit is not None and limit < 1:
            raise UsageError(f"limit must be 1 or more, not {limit}")
        if state is not None and state not in STATES:
            raise UsageError(f"unknown state {state!r}", hint="one of " + ", ".join(STATES))
        with self._ledger() as ledger:
            return ledger.search(text=search, state=state, limit=limit)

    def batch(
        self,
        lines: Iterable[str | dict[str, Any]],
        *,
        concurrency: int = 4,
        style: str | None = None,
        ar: str | None = None,
        quality: str | None = None,
        seed: int | None = None,
        negative: str | None = None,
        enhance: bool | None = None,
        out: str | Path | None = None,
        max_cost: Decimal | str | None = None,
        again: bool = False,
        timeout: float | None = None,
    ) -> Generator[Result, None, None]:
        """Run many prompts concurrently, yielding each result as it finishes; like `soul batch`.

        `lines` are prompts, or dicts with the fields of a batch file's JSON Lines
        (`prompt`, `style`, `ar`, `quality`, `seed`, `negative`, `out`, `name`). The
        same lines again resume the earlier run: a line already sent is never sent
        twice (its earlier result is yielded), unless `again`. A batch costing more
        than `max_cost` raises before anything is sent. Closing the iterator early
        stops the batch; the tasks in flight stay in the ledger.
        """
        from soulcli.batchfile import BatchDefaults, BatchFileError, batch_key, parse_batch
        from soulcli.batchplan import make_plan
        from soulcli.config import parse_ptc
        from soulcli.models import format_ptc

        _expect(concurrency, int, "concurrency")
        if not 1 <= concurrency <= 32:
            raise UsageError(f"concurrency must be 1 to 32, not {concurrency}")
        text = _batch_text(list(lines))
        defaults = BatchDefaults(
            style=style if style is not None else self.settings.style,
            ar=ar if ar is not None else self.settings.aspect_ratio,
            quality=quality if quality is not None else self.settings.quality,
            seed=seed,
            negative=negative,
            enhance=enhance,
            out=str(out) if out is not None else self.settings.out_dir,
        )
        try:
            parsed = parse_batch(text, defaults, source="the batch")
        except BatchFileError as exc:
            exc.hint = "; ".join(exc.problems[:3])
            raise
        ceiling = parse_ptc(str(max_cost)) if max_cost is not None else None
        with self._ledger() as ledger:
            key = batch_key(text, defaults)
            batch_id = ledger.find_batch(key)
            plan = make_plan(ledger, parsed, again=again, legacy_batch_id=batch_id)
            if ceiling is not None and plan.cost > ceiling:
                raise SoulError(
                    f"this batch would cost {format_ptc(plan.cost)} PTC, above max_cost "
                    f"{format_ptc(ceiling)}; nothing was sent",
                    exit_code=ExitCode.DECLINED,
                )
            if plan.new:
                self._api_key()  # no key: say so before the first line is taken
            yield from self._run_batch(
                ledger,
                plan,
                key=key,
                batch_id=batch_id,
                total=len(parsed),
                concurrency=concurrency,
                timeout=timeout,
            )

    # -- inside ----------------------------------------------------------------------------

    def _as_request(self, prompt: str | GenerationRequest, **options: Any) -> GenerationRequest:
        from soulcli.models import GenerationRequest

        if isinstance(prompt, GenerationRequest):
            given = sorted(name for name, value in options.items() if value is not None)
            if given:
                raise UsageError(
                    f"{', '.join(given)} given with a ready request",
                    hint="pass them to request() instead",
                )
            return prompt
        return self.request(prompt, **options)

    def _api_key(self) -> str:
        from soulcli.config import require_api_key

        return require_api_key(self.settings)

    @contextmanager
    def _client(self) -> Iterator[ApiClient]:
        from soulcli.follow import open_client

        with open_client(self.settings) as client:
            yield client

    @contextmanager
    def _ledger(self) -> Iterator[Ledger]:
        from soulcli.ledger import Ledger
        from soulcli.paths import LEDGER_FILENAME

        path = self.data_dir / LEDGER_FILENAME if self.data_dir is not None else None
        with Ledger.open(path) as ledger:
            yield ledger

    def _out_dir(self, out: str | Path | None, *, before_sending: bool = False) -> Path:
        from soulcli.outdir import prepare_before_sending, prepare_out_dir

        prepare = prepare_before_sending if before_sending else prepare_out_dir
        return prepare(Path(out or self.settings.out_dir or ".").expanduser())

    def _submit(
        self,
        client: ApiClient,
        ledger: Ledger,
        request: GenerationRequest,
        *,
        out: str | Path | None,
        name: str | None,
    ) -> Task:
        from soulcli.config import check_base_url
        from soulcli.submit import submit_recorded

        if name is not None:
            from soulcli.batchfile import check_image_stem

            check_image_stem(name, what="name")
        # An unwritable directory is found before paying.
        out_dir = self._out_dir(out, before_sending=True)
        with _stops_stay_stops():
            local_id, task_id = submit_recorded(
                client,
                ledger,
                request,
                out_dir=str(out_dir),
                api_host=check_base_url(self.settings.base_url),
                image_stem=name,
            )
        return Task(task_id, local_id, request, out_dir, name)

    def _follow(
        self,
        client: ApiClient,
        ledger: Ledger,
        task: Task,
        *,
        timeout: float | None,
        just_submitted: bool = False,
    ) -> Result:
        from soulcli.follow import FollowOptions, Tracked, follow_task
        from soulcli.models import format_ptc

        with _stops_stay_stops():
            outcome = follow_task(
                client,
                task.task_id,
                out_dir=task.out_dir,
                timeout=self._timeout(timeout),
                price=format_ptc(task.request.price),
                tracked=Tracked(ledger, task.local_id, task.request),
                options=FollowOptions(
                    watcher=self.watcher, stem=task.name, just_submitted=just_submitted
                ),
            )
        return _result(outcome, task.request, local_id=task.local_id, out_dir=task.out_dir)

    def _timeout(self, timeout: float | None) -> float:
        from soulcli.waiting import DEFAULT_WAIT_TIMEOUT

        for value in (timeout, self.timeout):
            _expect(value, (int, float), "timeout")
            if value is not None and value <= 0:
                raise UsageError(f"timeout must be more than 0 seconds, not {value}")

        return timeout or self.timeout or DEFAULT_WAIT_TIMEOUT

    def _fetch(
        self, task: Task | str | int, *, out: str | Path | None, wait: bool, timeout: float | None
    ) -> Result:
        from soulcli.follow import FollowOptions, Tracked, follow_task
        from soulcli.models import format_ptc, valid_task_id
        from soulcli.resume import already_saved, images_dir, refuse_if_followed

        key = task.task_id if isinstance(task, Task) else str(task).strip()
        with self._ledger() as ledger:
            record = ledger.get(key)
            if record is not None and record.remote_id is None:
                raise SoulError(
                    f"task {record.id} never got a task id ({record.state})",
                    exit_code=ExitCode.NOT_FOUND,
                )
            remote_id = record.remote_id if record is not None and record.remote_id else key
            if not valid_task_id(remote_id):
                raise UsageError(
                    f"{key!r} is not a task id", hint="task ids look like higgsfield_472f8f0319ac"
                )
            out_dir: Path | None
            if record is not None and (out is not None or record.out_dir):
                out_dir = images_dir(record, Path(out) if out is not None else None)
                if already_saved(record, out_dir):
                    return _recorded_result(record)
                refuse_if_followed(ledger, record)
            else:
                out_dir = self._out_dir(out)  # a task soul did not submit: here
            request = record.request() if record is not None else None
            with self._client() as client, _stops_stay_stops():
                outcome = follow_task(
                    client,
                    remote_id,
                    out_dir=out_dir,
                    timeout=self._timeout(timeout),
                    price=format_ptc(record.price_ptc) if record else "?",
                    wait=wait,
                    tracked=Tracked(ledger, record.id, request) if record else None,
                    options=FollowOptions(
                        watcher=self.watcher,
                        stem=record.image_stem if record else None,
                        submitted_at=record.created_at if record else None,
                    ),
                )
        return _result(outcome, request, local_id=record.id if record else None, out_dir=out_dir)

    def _run_batch(
        self,
        ledger: Ledger,
        plan: Plan,
        *,
        key: str,
        batch_id: int | None,
        total: int,
        concurrency: int,
        timeout: float | None,
    ) -> Generator[Result, None, None]:
        """Run the plan on a thread of its own and yield its results as they come.

        Every line gets one result: those settled as they finish, then the rest (lines
        running elsewhere, maybe charged, or not started because the batch stopped).
        """
        import queue

        from soulcli.batchrun import BatchEvents, Runner, run_plan

        done: queue.SimpleQueue[LineResult | None] = queue.SimpleQueue()
        runners: list[Runner] = []
        stopping = threading.Event()
        every: list[LineResult] = []
        failure: list[BaseException] = []

        class Events(BatchEvents):
            def result(self, result: LineResult) -> None:
                done.put(result)

        def started(runner: Runner) -> None:
            runners.append(runner)
            if stopping.is_set():  # stopped before the runner existed
                runner.stop.set()

        def run() -> None:
            try:
                results, _ = run_plan(
                    plan,
                    ledger=ledger,
                    settings=self.settings,
                    batch_id=batch_id,
                    key=key,
                    source="the batch",
                    total=total,
                    concurrency=concurrency,
                    timeout=self._timeout(timeout),
                    events=Events(total, already_done=len(plan.done)),
                    on_start=started,
                )
                every.extend(results)
            except BaseException as exc:
                failure.append(exc)
            finally:
                done.put(None)

        thread = threading.Thread(target=run, name="soul-batch-run", daemon=True)
        thread.start()
        yielded: set[int] = set()
        try:
            while (result := done.get()) is not None:
                yielded.add(result.line.number)
                yield _line_result(result)
        finally:
            # Closed early, or interrupted: the workers stop at their next safe point,
            # and every task in flight stays in the ledger.
            stopping.set()
            for runner in runners:
                runner.stop.set()
            thread.join()
        if failure:
            raise failure[0]
        for result in every:
            if result.line.number not in yielded:
                yield _line_result(result)


_KINDS = {str: "text", int: "a whole number", bool: "True or False", (int, float): "a number"}


def _expect(
    value: object, kind: type | tuple[type, ...], what: str, *, required: bool = False
) -> None:
    """A UsageError, not a TypeError deep inside, for an argument of the wrong type."""
    wrong = isinstance(value, bool) and kind is not bool  # True is an int to Python
    if (value is not None or required) and (wrong or not isinstance(value, kind)):
        raise UsageError(f"{what} must be {_KINDS[kind]}, not {type(value).__name__}")


def _let_go(ledger: Ledger, local_id: int) -> None:
    from soulcli.submit import try_to_record

    try_to_record(ledger.release, local_id)  # if it fails, it is free when this process ends


def _batch_text(lines: list[str | dict[str, Any]]) -> str:
    """The batch file these lines make: one prompt per line, or JSON Lines if need be."""
    prompts = [line for line in lines if isinstance(line, str)]
    plain = len(prompts) == len(lines) and not any(
        # As a line of its own, such a prompt would be split, skipped as a comment,
        # or read as JSON.
        "\n" in p or "\r" in p or p.lstrip().startswith(("#", "{"))
        for p in prompts
    )
    if plain:
        return "\n".join(prompts)
    rows = [line if isinstance(line, dict) else {"prompt": line} for line in lines]
    return "\n".join(json.dumps(row, ensure_ascii=False) for row in rows)


def _result(
    outcome: Outcome,
    request: GenerationRequest | None,
    *,
    local_id: int | None,
    out_dir: Path | None,
) -> Result:
    snapshot = outcome.snapshot
    return Result(
        task_id=snapshot.task_id,
        status=outcome.status if snapshot.finished else snapshot.phase,
        images=[image.path for image in outcome.saved],
        missing=[MissingImage(m.index, m.status, m.reason) for m in outcome.missing],
        request=request,
        finished=snapshot.finished,
        local_id=local_id,
        out_dir=out_dir,
    )


def _recorded_result(record: TaskRecord, line: int | None = None) -> Result:
    """A finished ledger task, from what the ledger says of it."""
    return Result(
        task_id=str(record.remote_id),
        status=record.state,
        images=[Path(image["path"]) for image in record.images if image.get("path")],
        missing=[
            MissingImage(int(image["index"]), str(image["status"]))
            for image in record.images
            if not image.get("path")
        ],
        request=record.request(),
        local_id=record.id,
        out_dir=Path(record.out_dir) if record.out_dir else None,
        line=line,
    )


def _line_result(result: LineResult) -> Result:
    number = result.line.number
    if result.earlier is not None:
        return _recorded_result(result.earlier, number)
    out_dir = Path(result.line.out or ".").expanduser().resolve()
    if result.outcome is not None:
        found = _result(result.outcome, result.request, local_id=result.local_id, out_dir=out_dir)
        return replace(found, line=number)
    return Result(
        task_id=result.task_id or "",
        status=result.state,
        images=[],
        missing=[],
        request=result.request or result.line.request,
        finished=False,
        local_id=result.local_id,
        out_dir=out_dir,
        line=number,
        error=result.detail,
    )


@contextmanager
def _stops_stay_stops() -> Iterator[None]:
    """Ctrl-C stays a KeyboardInterrupt in a library (not an error that `except Exception`
    would catch), with the task and how to resume it in its message."""
    try:
        yield
    except SoulError as exc:
        if exc.exit_code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
            hint = f"; {exc.hint}" if exc.hint else ""
            raise KeyboardInterrupt(exc.message + hint) from None
        raise
