"""The HTTP layer's retry policy, with httpx.MockTransport: what is re-sent and what never is."""

from __future__ import annotations

import json
from collections.abc import Callable
from email.utils import formatdate

import httpx
import pytest

from soulcli.client import ApiClient, RetryableError, parse_retry_after
from soulcli.errors import MaybeChargedError, ServerError, UnreachableError
from soulcli.models import GenerationRequest

REQUEST = GenerationRequest(
    prompt="a dog",
    style_id="464ea177-8d40-4940-8d9d-b438bab269c7",
    style_name="GENERAL",
    aspect_ratio="1:1",
    quality="720p",
    seed=5,
)


def client_with(
    steps: list[Callable[[httpx.Request], httpx.Response]],
) -> tuple[ApiClient, list[httpx.Request], list[float]]:
    seen: list[httpx.Request] = []
    slept: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return steps[min(len(seen), len(steps)) - 1](request)

    client = ApiClient(
        "https://api.example", "sk-unit", transport=httpx.MockTransport(handler), sleep=slept.append
    )
    return client, seen, slept


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"id": "higgsfield_abc", "status": "queued"})


def raise_(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def step(request: httpx.Request) -> httpx.Response:
        raise exc

    return step


def test_connect_errors_are_retried_because_nothing_was_sent() -> None:
    client, seen, slept = client_with(
        [raise_(httpx.ConnectError("refused")), raise_(httpx.ConnectTimeout("slow")), ok]
    )
    assert client.submit(REQUEST) == "higgsfield_abc"
    assert len(seen) == 3 and len(slept) == 2


def test_persistent_connect_error_is_unreachable() -> None:
    client, seen, _ = client_with([raise_(httpx.ConnectError("refused"))])
    with pytest.raises(UnreachableError):
        client.submit(REQUEST)
    assert len(seen) == 5


@pytest.mark.parametrize(
    "failure",
    [
        raise_(httpx.ReadTimeout("slow")),
        raise_(httpx.RemoteProtocolError("dropped")),
        raise_(httpx.ReadError("reset")),
        raise_(httpx.WriteTimeout("half sent")),
        lambda r: httpx.Response(500, text="boom"),
        lambda r: httpx.Response(502, text="bad"),
        lambda r: httpx.Response(200, text="<html>oops</html>"),
        lambda r: httpx.Response(200, json={"status": "queued"}),
        lambda r: httpx.Response(201, json={"code": 200, "data": {}}),
    ],
)
def test_a_submit_that_may_have_arrived_is_never_resent(
    failure: Callable[[httpx.Request], httpx.Response],
) -> None:
    client, seen, _ = client_with([failure, ok])
    with pytest.raises(MaybeChargedError) as caught:
        client.submit(REQUEST)
    assert len(seen) == 1
    assert "may have been charged" in caught.value.message


def test_429_is_retried_honouring_a_capped_retry_after() -> None:
    client, seen, slept = client_with(
        [
            lambda r: httpx.Response(429, headers={"Retry-After": "2"}),
            lambda r: httpx.Response(429, headers={"Retry-After": "99999"}),
            ok,
        ]
    )
    assert client.submit(REQUEST) == "higgsfield_abc"
    assert slept == [2.0, 30.0]
    assert len(seen) == 3


def test_endless_429_gives_up_saying_nothing_was_charged() -> None:
    client, seen, _ = client_with([lambda r: httpx.Response(429)])
    with pytest.raises(ServerError) as caught:
        client.submit(REQUEST)
    assert "nothing was charged" in caught.value.message and len(seen) == 5


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"id": "higgsfield_1"}, "higgsfield_1"),
        ({"code": 200, "data": {"task_id": "higgsfield_2"}}, "higgsfield_2"),
        ({"task_id": "higgsfield_3"}, "higgsfield_3"),
    ],
)
def test_every_documented_submit_shape_gives_the_task_id(payload: object, expected: str) -> None:
    client, seen, _ = client_with([lambda r: httpx.Response(200, json=payload)])
    assert client.submit(REQUEST) == expected
    sent = seen[0]
    assert sent.headers["Authorization"] == "Bearer sk-unit"
    assert json.loads(sent.content) == REQUEST.body()


def test_poll_failures_are_retryable_but_404_is_not() -> None:
    client, _, _ = client_with([lambda r: httpx.Response(503)])
    with pytest.raises(RetryableError):
        client.fetch_once("higgsfield_x")
    client, _, _ = client_with([lambda r: httpx.Response(404, json={"message": "gone"})])
    with pytest.raises(Exception) as caught:
        client.fetch_once("higgsfield_x")
    assert type(caught.value).__name__ == "TaskNotFoundError"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-10", 0.0),
        ("1e9", 30.0),
        ("soon", None),
        ("", None),
        ("nan", None),
        (None, None),
    ],
)
def test_retry_after_parsing(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_as_http_date() -> None:
    import time

    now = time.time()
    assert parse_retry_after(formatdate(now + 5, usegmt=True), now=now) == pytest.approx(5, abs=1)
    assert parse_retry_after(formatdate(now - 50, usegmt=True), now=now) == 0.0
