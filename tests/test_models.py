"""Tolerant parsing of poll answers, task ids and prices."""

from __future__ import annotations

from decimal import Decimal

import pytest

from soulcli.models import extract_task_id, format_ptc, parse_snapshot, price_of


def job(status: str, url: str | None = None) -> dict[str, object]:
    results = None
    if url:
        results = {"raw": {"type": "image/png", "url": url}, "min": {"url": url + ".min"}}
    return {"id": "j", "status": status, "results": results}


def test_queued_task_with_no_jobs_is_not_finished() -> None:
    snap = parse_snapshot("t", {"id": "t", "status": "queued", "jobs": []})
    assert not snap.finished and snap.phase == "queued"


def test_all_completed_is_finished_with_raw_urls() -> None:
    snap = parse_snapshot("t", {"jobs": [job("completed", f"https://c/{i}") for i in range(4)]})
    assert snap.finished and snap.outcome == "completed"
    assert [j.url for j in snap.jobs] == [f"https://c/{i}" for i in range(4)]


def test_partial_and_failed_outcomes() -> None:
    jobs = [job("completed", "https://c/1")] * 3 + [job("nsfw")]
    assert parse_snapshot("t", {"jobs": jobs}).outcome == "partial"
    assert parse_snapshot("t", {"jobs": [job("failed")] * 4}).outcome == "failed"


def test_unknown_status_means_not_yet() -> None:
    jobs = [job("completed", "https://c/1")] * 3 + [job("rendering")]
    snap = parse_snapshot("t", {"jobs": jobs})
    assert not snap.finished and snap.phase == "in progress"


def test_short_job_list_waits_unless_the_task_says_it_is_done() -> None:
    jobs = [job("completed", "https://c/1")] * 2
    assert not parse_snapshot("t", {"status": "in_progress", "jobs": jobs}).finished
    assert parse_snapshot("t", {"status": "completed", "jobs": jobs}).finished


def test_fewer_final_jobs_and_no_task_status_is_finished() -> None:
    one = parse_snapshot("t", {"id": "t", "jobs": [job("completed", "https://c/1")]})
    assert one.finished and one.outcome == "completed"
    two = parse_snapshot("t", {"jobs": [job("completed", "https://c/1"), job("nsfw")]})
    assert two.finished and two.outcome == "partial"
    waiting = [job("completed", "https://c/1"), job("queued")]
    assert not parse_snapshot("t", {"jobs": waiting}).finished


@pytest.mark.parametrize("status", ["error", "ERROR", "failed", "nsfw", "canceled", "cancelled"])
def test_failure_statuses_are_final(status: str) -> None:
    snap = parse_snapshot("t", {"jobs": [job(status)] * 4})
    assert snap.finished and snap.outcome == "failed"


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("processing", "in progress"),
        ("running", "in progress"),
        ("In-Progress", "in progress"),
        ("pending", "queued"),
        ("waiting", "queued"),
        ("queued", "queued"),
        ("something_new", "queued"),
    ],
)
def test_working_statuses_map_to_a_phase_and_never_finish(status: str, phase: str) -> None:
    snap = parse_snapshot("t", {"status": status, "jobs": [job(status)] * 4})
    assert not snap.finished and snap.phase == phase and snap.outcome == phase


def test_raw_falls_back_to_min() -> None:
    snap = parse_snapshot(
        "t", {"jobs": [{"status": "completed", "results": {"min": {"url": "https://c/m"}}}]}
    )
    assert snap.jobs[0].url == "https://c/m"


@pytest.mark.parametrize("payload", [[], "text", 5, {"jobs": "nope"}])
def test_nonsense_answers_raise_value_error(payload: object) -> None:
    with pytest.raises(ValueError):
        parse_snapshot("t", payload)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"id": "higgsfield_1"}, "higgsfield_1"),
        ({"data": {"task_id": "abc-2"}}, "abc-2"),
        ({"task_id": 12345}, "12345"),
        ({"id": "../../etc"}, None),
        ({"id": ""}, None),
        ({"id": True}, None),
        ({"data": None}, None),
        ([], None),
    ],
)
def test_extract_task_id(payload: object, expected: str | None) -> None:
    assert extract_task_id(payload) == expected


def test_prices() -> None:
    assert price_of("720p") == Decimal("0.1") and price_of("1080p", 3) == Decimal("0.6")
    assert format_ptc(Decimal("0.1") / 4) == "0.025"
