"""Following a task: wait for it, save its images with sidecars, record the outcome.

The core of generate, fetch and batch, for the CLI and the library alike: it
prints nothing and imports no terminal library; what it has to say goes to a
`Watcher`, which the CLI turns into a spinner and warnings.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soulcli import signals
from soulcli.config import Settings, check_base_url, require_api_key
from soulcli.errors import STOPS, ExitCode, SoulError, TaskStoppedError, resume_command

if TYPE_CHECKING:
    from soulcli.client import ApiClient
    from soulcli.downloads import ImageDownloader, MissingImage, SavedImage
    from soulcli.ledger import Ledger
    from soulcli.models import GenerationRequest, TaskSnapshot
    from soulcli.waiting import PollSchedule


class Watcher:
    """Told what a task is doing while it is followed; by default it shows nothing.

    Warnings (a sidecar or ledger write that failed while the images are safe) go to
    the `soulcli` logger. The CLI's watcher draws the spinner and prints them instead.
    """

    def waiting(
        self, task_id: str, price: str, started_at: float | None
    ) -> AbstractContextManager[object]:
        """A context around the wait and the downloads (the CLI's spinner)."""
        return nullcontext()

    def updated(self, snapshot: TaskSnapshot) -> None:
        """A poll answered."""

    def retrying(self, task_id: str, reason: str) -> None:
        """A poll failed in a way worth retrying; it is retried."""

    def downloading(self, task_id: str) -> None:
        """The task is over; its images are being saved."""

    def warning(self, message: str) -> None:
        import logging  # only when there is something to say: not on every run's path

        logging.getLogger("soulcli").warning("%s", message)


def open_client(settings: Settings) -> ApiClient:
    """An API client for the effective base URL and key (the key is checked first)."""
    api_key = require_api_key(settings)
    base_url = check_base_url(settings.base_url)
    from soulcli.client import ApiClient

    return ApiClient(base_url, api_key)


@dataclass
class Outcome:
    """A task as reported to the user: what the server said and what was saved."""

    snapshot: TaskSnapshot
    saved: list[SavedImage] = field(default_factory=list)
    missing: list[MissingImage] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.missing and self.saved:
            return "completed"
        return "partial" if self.saved else "failed"

    @property
    def exit_code(self) -> ExitCode:
        if not self.missing and self.saved:
            return ExitCode.OK
        if any(m.status == "download failed" for m in self.missing):
            return ExitCode.DOWNLOAD
        return ExitCode.PARTIAL if self.saved else ExitCode.TASK_FAILED

    def images_json(self) -> list[dict[str, Any]]:
        return [
            {"index": s.index, "url": s.url, "path": str(s.path), "variant": s.variant}
            for s in self.saved
        ]

    def missing_json(self) -> list[dict[str, Any]]:
        return [{"index": m.index, "status": m.status, "reason": m.reason} for m in self.missing]

    def ledger_images(self) -> list[dict[str, Any]]:
        """One entry per job: its status, URL and saved path (if any)."""
        saved = {s.index: s for s in self.saved}
        missing = {m.index: m for m in self.missing}
        images = []
        for job in self.snapshot.jobs:
            entry: dict[str, Any] = {
                "index": job.index,
                "status": job.status,
                "url": job.url,
                "path": None,
            }
            if job.index in saved:
                entry["url"] = saved[job.index].url
                entry["path"] = str(saved[job.index].path)
                entry["variant"] = saved[job.index].variant
            elif job.index in missing:
                entry["status"] = missing[job.index].status
            images.append(entry)
        return images


@dataclass
class Tracked:
    """The ledger row a task belongs to, if soul submitted it."""

    ledger: Ledger
    local_id: int
    request: GenerationRequest | None


@dataclass
class FollowOptions:
    """How follow_task behaves; the defaults suit one task on a terminal."""

    watcher: Watcher = field(default_factory=Watcher)
    # A batch passes a sleep that raises Interrupted when the batch is stopped.
    sleep: Callable[[float], None] = time.sleep
    stem: str | None = None  # image file stem instead of the task id
    downloader: ImageDownloader | None = None  # shared by a batch's tasks
    just_submitted: bool = False  # skip the pointless poll at once after a submit
    previews: dict[int, Path] = field(default_factory=dict)  # earlier previews to replace
    # When the task was submitted (wall clock): the spinner counts from it, not from now.
    submitted_at: float | None = None


def follow_task(
    client: ApiClient,
    task_id: str,
    *,
    out_dir: Path | None,
    timeout: float,
    price: str,
    wait: bool = True,
    tracked: Tracked | None = None,
    options: FollowOptions | None = None,
) -> Outcome:
    """Wait for (or look at) a task, save its images with sidecars, and update the ledger."""
    options = options or FollowOptions()
    with signals.naming_task(task_id, out_dir):
        return _follow(client, task_id, out_dir, timeout, price, wait, tracked, options)


def _follow(
    client: ApiClient,
    task_id: str,
    out_dir: Path | None,
    timeout: float,
    price: str,
    wait: bool,
    tracked: Tracked | None,
    options: FollowOptions,
) -> Outcome:
    from soulcli.ledger import COMPLETED, FAILED, PARTIAL, SUBMITTED, TIMED_OUT

    if tracked is not None and out_dir is not None and not options.previews:
        record = tracked.ledger.get(tracked.local_id)
        if record is not None:
            options.previews = record.previews_in(out_dir)
    schedule = _poll_schedule(tracked, options) if wait else None
    try:
        outcome = _wait_and_save(
            client,
            task_id,
            out_dir=out_dir,
            timeout=timeout,
            price=price,
            wait=wait,
            request=tracked.request if tracked else None,
            options=options,
            schedule=schedule,
        )
    except TaskStoppedError as exc:
        if tracked is not None:  # stopped: whoever comes next may resume it at once
            _best_effort(options.watcher, tracked.ledger.release, tracked.local_id)
        if tracked is not None and exc.exit_code == ExitCode.TIMEOUT:
            _best_effort(
                options.watcher, tracked.ledger.set_state, tracked.local_id, TIMED_OUT, exc.message
            )
        raise
    except SoulError as exc:
        if tracked is not None:
            _best_effort(options.watcher, tracked.ledger.set_error, tracked.local_id, exc.message)
        raise
    # One answer with a short job list and no task status may be a list still growing:
    # only a wait (which sees it twice) may record such a task as finished.
    over = outcome.snapshot.finished and (wait or outcome.snapshot.says_it_is_over)
    if tracked is None:
        return outcome
    seen = schedule.finish_seen() if schedule is not None else None
    if seen is not None:
        # For the next task's polls only: nothing is lost if it cannot be written.
        with contextlib.suppress(SoulError):
            tracked.ledger.set_done_seen(tracked.local_id, *seen)
    if not over or (out_dir is None and outcome.snapshot.done_count > 0):
        # Only looked at, or nowhere to save it: not this process's to finish.
        _best_effort(options.watcher, tracked.ledger.release, tracked.local_id)
        return outcome
    state = {
        ExitCode.OK: COMPLETED,
        ExitCode.PARTIAL: PARTIAL,
        ExitCode.TASK_FAILED: FAILED,
    }.get(outcome.exit_code)
    if state is None:  # downloads failed: leave it resumable
        _best_effort(
            options.watcher,
            tracked.ledger.set_results,
            tracked.local_id,
            SUBMITTED,
            outcome.ledger_images(),
            "some images could not be downloaded",
        )
    else:
        _best_effort(
            options.watcher,
            tracked.ledger.set_results,
            tracked.local_id,
            state,
            outcome.ledger_images(),
        )
    return outcome


def _poll_schedule(tracked: Tracked | None, options: FollowOptions) -> PollSchedule:
    """When to poll: densely where the user's recent similar tasks ended, if any did."""
    from soulcli.waiting import FinishWindow, PollSchedule

    try:
        record = tracked.ledger.get(tracked.local_id) if tracked is not None else None
        if tracked is None or record is None:
            return PollSchedule(just_submitted=options.just_submitted)
        ends = tracked.ledger.recent_ends(
            api_host=record.api_host, quality=record.quality, batch_id=record.batch_id
        )
    except SoulError:  # an unreadable ledger: the task is still polled, on the grid
        return PollSchedule(just_submitted=options.just_submitted)
    return PollSchedule(
        FinishWindow.spanning(ends),
        submitted_at=record.created_at,
        just_submitted=options.just_submitted,
    )


def _best_effort(watcher: Watcher, write: Callable[..., None], *args: Any) -> None:
    """A ledger write after the task id is recorded: if it fails, the row stays resumable."""
    from soulcli.submit import try_to_record

    problem = try_to_record(write, *args)
    if problem:
        watcher.warning(f"{problem}; `soul fetch` checks this task again later")


def _wait_and_save(
    client: ApiClient,
    task_id: str,
    *,
    out_dir: Path | None,
    timeout: float,
    price: str,
    wait: bool,
    request: GenerationRequest | None,
    options: FollowOptions,
    schedule: PollSchedule | None = None,
) -> Outcome:
    """Poll until finished (or once if not `wait`), then save completed images to `out_dir`."""
    from soulcli.waiting import wait_for_task

    watcher = options.watcher

    def on_retry(reason: str) -> None:
        watcher.retrying(task_id, reason)

    doing = "waiting for"
    try:
        with contextlib.ExitStack() as stack:
            if wait:
                stack.enter_context(watcher.waiting(task_id, price, options.submitted_at))

            made: list[ImageDownloader] = []

            def make_downloader() -> None:
                # While the wait has time to spare rather than after it (importing and
                # building the image client takes 30-80 ms): the images start at once.
                from soulcli.downloads import ImageDownloader

                made.append(stack.enter_context(ImageDownloader()))

            if wait:
                needed = out_dir is not None and options.downloader is None
                snapshot = wait_for_task(
                    client,
                    task_id,
                    timeout=timeout,
                    on_update=watcher.updated,
                    on_retry=on_retry,
                    sleep=options.sleep,
                    schedule=schedule,
                    idle=make_downloader if needed else None,
                )
                if made:
                    options = replace(options, downloader=made[0])
            else:
                snapshot = client.fetch(task_id, deadline=time.monotonic() + min(timeout, 30.0))
            outcome = Outcome(snapshot)
            if out_dir is not None and snapshot.jobs:
                doing = "downloading the images of"
                watcher.downloading(task_id)
                outcome.saved, outcome.missing = _save(task_id, snapshot, out_dir, request, options)
    except STOPS as stop:
        raise TaskStoppedError.by_signal(task_id, out_dir, stop, doing=doing) from None
    except TaskStoppedError as exc:
        exc.hint = f"resume with: {resume_command(task_id, out_dir)}"
        raise
    except SoulError as exc:
        # Whatever went wrong after the submit, the user must leave knowing the task id.
        if task_id not in exc.message:
            exc.message = f"task {task_id}: {exc.message}"
        raise
    return outcome


def _save(
    task_id: str,
    snapshot: TaskSnapshot,
    out_dir: Path,
    request: GenerationRequest | None,
    options: FollowOptions,
) -> tuple[list[SavedImage], list[MissingImage]]:
    from soulcli.downloads import ImageDownloader
    from soulcli.sidecar import write_sidecar

    def with_sidecar(image: SavedImage) -> None:
        try:
            write_sidecar(
                image.path,
                task_id=task_id,
                index=image.index,
                source_url=image.url,
                request=request,
            )
        except OSError as exc:  # the image itself is whole; only its metadata is missing
            options.watcher.warning(
                f"could not write the metadata file for {image.path.name}: {exc.strerror}"
            )

    jobs = snapshot.jobs if snapshot.finished else [j for j in snapshot.jobs if j.terminal]
    # A batch shares one downloader between its tasks; a single task makes its own.
    shared = options.downloader
    with nullcontext(shared) if shared is not None else ImageDownloader() as downloader:
        return downloader.save_all(
            task_id,
            jobs,
            out_dir,
            on_saved=with_sidecar,
            stem=options.stem,
            previews=options.previews,
        )


def request_json(request: GenerationRequest) -> dict[str, Any]:
    """The request fields as they appear in --json output, with the price."""
    from soulcli.sidecar import request_fields

    return {**request_fields(request), "cost_ptc": float(request.price)}
