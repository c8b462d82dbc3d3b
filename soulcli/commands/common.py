"""What generate and fetch share: connecting, waiting with a spinner, saving, reporting."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soulcli import ui
from soulcli.config import Settings, check_base_url, require_api_key
from soulcli.errors import ExitCode, SoulError, TaskStoppedError, Terminated
from soulcli.text import one_line

if TYPE_CHECKING:
    from soulcli.client import ApiClient
    from soulcli.downloads import MissingImage, SavedImage
    from soulcli.models import TaskSnapshot


def open_client(settings: Settings) -> ApiClient:
    """An API client for the effective base URL and key (the key is checked first)."""
    api_key = require_api_key(settings)
    base_url = check_base_url(settings.base_url)
    from soulcli.client import ApiClient

    return ApiClient(base_url, api_key)


def resume_command(task_id: str, out_dir: Path | None) -> str:
    command = f"soul fetch {shlex.quote(task_id)} --wait"
    if out_dir is not None:
        command += f" --out {shlex.quote(str(out_dir))}"
    return command


def stopped(
    task_id: str, out_dir: Path | None, *, terminated: bool, doing: str
) -> TaskStoppedError:
    """The error for Ctrl-C or SIGTERM while a task is under way: id and resume command."""
    error = TaskStoppedError(
        f"interrupted while {doing} task {task_id}; it goes on on the server",
        task_id=task_id,
        exit_code=ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED,
    )
    error.hint = f"resume with: {resume_command(task_id, out_dir)}"
    return error


@dataclass
class Outcome:
    """A finished task as reported to the user."""

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
        return [{"index": s.index, "url": s.url, "path": str(s.path)} for s in self.saved]

    def missing_json(self) -> list[dict[str, Any]]:
        return [{"index": m.index, "status": m.status, "reason": m.reason} for m in self.missing]


def wait_and_save(
    client: ApiClient,
    task_id: str,
    *,
    out_dir: Path | None,
    timeout: float,
    price: str,
    wait: bool = True,
) -> Outcome:
    """Poll until finished (or once if not `wait`), then save completed images to `out_dir`."""
    from soulcli.waiting import wait_for_task

    line = ui.WaitLine(task_id, price)

    def on_retry(reason: str) -> None:
        line.retrying = reason
        if not ui.stderr_is_terminal():
            ui.say(f"soul: retrying task {task_id}: {one_line(reason, 120)}")

    doing = "waiting for"
    try:
        with ui.spinner(line if wait else None):
            if wait:
                snapshot = wait_for_task(
                    client, task_id, timeout=timeout, on_update=line.update, on_retry=on_retry
                )
            else:
                import time

                snapshot = client.fetch(task_id, deadline=time.monotonic() + min(timeout, 30.0))
            outcome = Outcome(snapshot)
            if out_dir is not None and snapshot.jobs:
                doing = "downloading the images of"
                line.downloading = True
                outcome.saved, outcome.missing = _save(task_id, snapshot, out_dir)
    except KeyboardInterrupt:
        raise stopped(task_id, out_dir, terminated=False, doing=doing) from None
    except Terminated:
        raise stopped(task_id, out_dir, terminated=True, doing=doing) from None
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
    task_id: str, snapshot: TaskSnapshot, out_dir: Path
) -> tuple[list[SavedImage], list[MissingImage]]:
    from soulcli.downloads import ImageDownloader

    jobs = snapshot.jobs if snapshot.finished else [j for j in snapshot.jobs if j.terminal]
    with ImageDownloader() as downloader:
        return downloader.save_all(task_id, jobs, out_dir)


def report(outcome: Outcome, *, as_json: bool, extra: dict[str, Any] | None = None) -> ExitCode:
    """Print saved paths (or one JSON object) on stdout and problems on stderr."""
    task_id = outcome.snapshot.task_id
    for image in outcome.saved:
        if image.note:
            ui.warn(f"image {image.index}: {image.note}; saved as {image.path}")
    for missing in outcome.missing:
        reason = f": {one_line(missing.reason, 160)}" if missing.reason else ""
        ui.say(
            f"soul: image {missing.index} of task {task_id} not delivered "
            f"({one_line(missing.status, 40)}){reason}"
        )
    if as_json:
        payload: dict[str, Any] = {"task_id": task_id, "status": outcome.status}
        payload.update(extra or {})
        payload["images"] = outcome.images_json()
        payload["missing"] = outcome.missing_json()
        ui.emit_json(payload)
    else:
        for image in outcome.saved:
            ui.emit(str(image.path))
    code = outcome.exit_code
    if code == ExitCode.DOWNLOAD:
        ui.say(f"soul: retry the downloads with: soul fetch {shlex.quote(task_id)} --out DIR")
    return code
