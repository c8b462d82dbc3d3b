"""The request and task shapes of the Soul API, its prices, and tolerant parsing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from soulcli.constants import IMAGES_PER_REQUEST, PRICE_PTC_TEXT, QUALITIES, QUALITY_ALIASES

PRICE_PTC = {quality: Decimal(text) for quality, text in PRICE_PTC_TEXT.items()}

COMPLETED = "completed"
# Final job statuses: `error` is how the provider's JobSet documentation spells a failure.
JOB_FAILURES = frozenset({"failed", "nsfw", "canceled", "cancelled", "error"})
TERMINAL = frozenset({COMPLETED}) | JOB_FAILURES
# Statuses that mean "working on it" (the display says "in progress"); any other
# status that is not final, known or not, means "not yet" and shows as "queued".
IN_PROGRESS = frozenset({"in_progress", "processing", "running", "generating"})

SUBMIT_PATH = "/higgsfield/text2image_soul"


def fetch_path(task_id: str) -> str:
    """Return the poll path for a task id (escaped: ids come from a server)."""
    from urllib.parse import quote

    return f"/higgsfield/task/{quote(task_id, safe='')}/fetch"


def normalize_quality(value: str) -> str | None:
    """Return the API spelling of a quality (`high` is `1080p`), or None if unknown."""
    key = value.strip().lower()
    if key in QUALITIES:
        return key
    return QUALITY_ALIASES.get(key)


def price_of(quality: str, requests: int = 1) -> Decimal:
    """Return the PTC price of `requests` submissions at `quality`."""
    return PRICE_PTC[quality] * requests


def format_ptc(amount: Decimal) -> str:
    """Return a price as a short decimal string ("0.1", "0.025")."""
    text = format(amount.normalize(), "f")
    return text


@dataclass(frozen=True)
class GenerationRequest:
    """One submit: every field the API marks required."""

    prompt: str
    style_id: str
    style_name: str
    aspect_ratio: str
    quality: str
    seed: int
    negative_prompt: str = ""
    enhance_prompt: bool = False

    def body(self) -> dict[str, Any]:
        """Return the JSON body exactly as it is sent."""
        return {
            "quality": self.quality,
            "aspect_ratio": self.aspect_ratio,
            "prompt": self.prompt,
            "enhance_prompt": self.enhance_prompt,
            "seed": self.seed,
            "style_id": self.style_id,
            "negative_prompt": self.negative_prompt,
        }

    @property
    def price(self) -> Decimal:
        return price_of(self.quality)


def extract_task_id(payload: object) -> str | None:
    """Find the task id in either documented submit shape, or a bare `task_id`."""
    if not isinstance(payload, dict):
        return None
    candidates: list[object] = [payload.get("id"), payload.get("task_id")]
    data = payload.get("data")
    if isinstance(data, dict):
        candidates += [data.get("task_id"), data.get("id")]
    for value in candidates:
        if isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value).strip()
            if valid_task_id(text):
                return text
    return None


_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")


def valid_task_id(text: str) -> bool:
    """Return whether `text` looks like a task id we can safely put in a URL and a file name."""
    return bool(_TASK_ID.match(text)) and ".." not in text


@dataclass(frozen=True)
class Job:
    """One of the (normally 4) images of a task."""

    index: int  # 1-based position in the task's job list
    status: str
    raw_url: str | None = None
    min_url: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def url(self) -> str | None:
        """The full-resolution URL, falling back to the preview."""
        return self.raw_url or self.min_url


@dataclass(frozen=True)
class TaskSnapshot:
    """What one poll said about a task."""

    task_id: str
    status: str | None
    jobs: tuple[Job, ...] = field(default_factory=tuple)

    @property
    def finished(self) -> bool:
        """True when every listed job is final and the task does not say it is still running.

        A list shorter than 4 may still grow while the task runs, so it counts as
        complete only when the task's own status is final or absent (some shapes of
        the task object have no top-level status, and some tasks have a single job).
        """
        if self.jobs:
            all_terminal = all(job.terminal for job in self.jobs)
            complete = (
                len(self.jobs) >= IMAGES_PER_REQUEST
                or self.status is None
                or self.status in TERMINAL
            )
            return all_terminal and complete
        return self.status in JOB_FAILURES

    @property
    def says_it_is_over(self) -> bool:
        """Whether the answer itself says the task is over: 4 jobs, or a final task status.

        A shorter list of final jobs with no task status is finished too, but only a
        second answer with the same list shows it is not still growing.
        """
        return len(self.jobs) >= IMAGES_PER_REQUEST or self.status in TERMINAL

    @property
    def done_count(self) -> int:
        return sum(1 for job in self.jobs if job.status == COMPLETED)

    @property
    def phase(self) -> str:
        """A short word for the spinner: queued, in progress or finished."""
        if self.finished:
            return "finished"
        statuses = {job.status for job in self.jobs} | {self.status or ""}
        if statuses & (IN_PROGRESS | TERMINAL):
            return "in progress"
        return "queued"

    @property
    def outcome(self) -> str:
        """completed, partial or failed, once finished; otherwise the phase."""
        if not self.finished:
            return self.phase
        done = self.done_count
        if done and done == len(self.jobs):
            return "completed"
        return "partial" if done else "failed"


def _url_of(results: object, key: str) -> str | None:
    if not isinstance(results, dict):
        return None
    entry = results.get(key)
    if isinstance(entry, dict):
        url = entry.get("url")
        if isinstance(url, str) and url.strip():
            return url.strip()
    return None


def normalize_status(value: object) -> str | None:
    """A status as soul compares it: lower case, `In-Progress` as `in_progress`."""
    if not isinstance(value, str) or not value.strip():
        return None
    return "_".join(value.strip().lower().replace("-", " ").split())


def parse_snapshot(task_id: str, payload: object) -> TaskSnapshot:
    """Read a poll answer, tolerating wrappers, missing fields and odd types."""
    if (
        isinstance(payload, dict)
        and isinstance(payload.get("data"), dict)
        and "jobs" not in payload
    ):
        payload = payload["data"]
    if not isinstance(payload, dict):
        raise ValueError("the task answer is not a JSON object")
    status_text = normalize_status(payload.get("status"))
    jobs_raw = payload.get("jobs")
    jobs: list[Job] = []
    if isinstance(jobs_raw, list):
        for position, item in enumerate(jobs_raw, start=1):
            if not isinstance(item, dict):
                jobs.append(Job(index=position, status="unknown"))
                continue
            results = item.get("results")
            jobs.append(
                Job(
                    index=position,
                    status=normalize_status(item.get("status")) or "unknown",
                    raw_url=_url_of(results, "raw"),
                    min_url=_url_of(results, "min"),
                )
            )
    elif jobs_raw is not None:
        raise ValueError("the task answer has a 'jobs' field that is not a list")
    return TaskSnapshot(task_id=task_id, status=status_text, jobs=tuple(jobs))
