"""The one HTTP client for the 302.AI API: auth, timeouts, retry policy, typed errors."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from soulcli import __version__
from soulcli.config import env_float
from soulcli.errors import (
    STOPS,
    AuthError,
    BalanceError,
    MaybeChargedError,
    RejectedError,
    ServerError,
    SoulError,
    SubmitStoppedError,
    TaskNotFoundError,
    UnreachableError,
    stop_exit_code,
    stop_word,
)
from soulcli.models import (
    SUBMIT_PATH,
    GenerationRequest,
    TaskSnapshot,
    extract_task_id,
    fetch_path,
    parse_snapshot,
)
from soulcli.text import one_line
from soulcli.tls import tls_context
from soulcli.transport import direct_transport

USER_AGENT = f"soul/{__version__} (+https://github.com/soulcli)"
MAX_API_BODY = 4 * 1024 * 1024  # no API answer is this large; a bigger one is hostile
RETRY_AFTER_CAP = 30.0  # seconds; a server asking for longer gets this much
SUBMIT_ATTEMPTS = 5
MAYBE_CHARGED = "the request may have been charged"

Sleep = Callable[[float], None]


class RetryableError(SoulError):
    """A failure that is safe to retry for a poll (never for a submit that was sent)."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, unreachable: bool = False
    ):
        super().__init__(message)
        self.retry_after = retry_after
        self.unreachable = unreachable
        self.exit_code = UnreachableError.exit_code if unreachable else ServerError.exit_code


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: httpx.Headers
    body: bytes


def default_timeout() -> httpx.Timeout:
    """Timeouts for API calls; SOUL_HTTP_TIMEOUT (seconds) changes the read timeout."""
    read = env_float("SOUL_HTTP_TIMEOUT", 60.0, low=0.1, high=600.0)
    return httpx.Timeout(connect=min(10.0, read), read=read, write=30.0, pool=10.0)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """The wait a Retry-After header asks for (seconds or HTTP date), capped; None if unusable."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 8.0) -> float:
    """Capped exponential backoff with full jitter (attempt counts from 0)."""
    return random.uniform(base / 2, min(cap, base * (2**attempt)))


def server_message(response: ApiResponse) -> str:
    """The server's own explanation from an error body, cleaned of control characters."""
    text = response.body[:20_000].decode("utf-8", "replace")
    try:
        payload: Any = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for candidate in (
            payload.get("error"),
            payload.get("message"),
            payload.get("detail"),
            payload.get("msg"),
        ):
            if isinstance(candidate, dict):
                candidate = candidate.get("message") or candidate.get("msg")
            if isinstance(candidate, str) and candidate.strip():
                return one_line(candidate, 200)
            if isinstance(candidate, list) and candidate:
                return one_line(json.dumps(candidate)[:200], 200)
    if text.lstrip().lower().startswith(("<!doctype", "<html")):
        return "the server sent an HTML page instead of an API answer"
    return one_line(text, 200) if text.strip() else f"HTTP {response.status}"


def _error_for_status(response: ApiResponse, *, task_id: str | None = None) -> SoulError:
    """Map a non-2xx status that is not retried to a typed error."""
    status = response.status
    message = server_message(response)
    if status == 401:
        return AuthError(
            f"the API key was refused (401): {message}",
            hint="check it with `soul config get api_key`",
        )
    if status in (402, 403):
        return BalanceError(
            f"the account cannot pay for this ({status}): {message}",
            hint="top up your 302.AI balance",
        )
    if status == 404 and task_id is not None:
        return TaskNotFoundError(f"no task {task_id!r} on the server (404): {message}")
    if status in (400, 422):
        return RejectedError(f"the API rejected the request ({status}): {message}")
    if 300 <= status < 400:
        return ServerError(f"the API answered with a redirect ({status}); check base_url")
    return ServerError(f"the API answered {status}: {message}")


class ApiClient:
    """Talks to the API host only; the key never leaves through this client to anyone else."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        # How retries wait; a batch replaces it with a wait that its Ctrl-C ends.
        self.sleep = sleep
        # Called on every 429, so a batch can lower its concurrency for a while.
        self.on_rate_limited: Callable[[], None] | None = None
        # 429s answered so far: a wait stops its dense polling once the API pushes back.
        self.rate_limits_seen = 0
        self._http = httpx.Client(
            base_url=base_url,
            # check_base_url allows plain http only to this machine: no TLS, no CA bundle.
            verify=tls_context(for_tls=not base_url.startswith("http://")),
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            },
            timeout=timeout or default_timeout(),
            follow_redirects=False,
            transport=transport or direct_transport(max_connections=100),
        )

    def close(self) -> None:
        self._http.close()

    def _rate_limited(self) -> None:
        self.rate_limits_seen += 1
        if self.on_rate_limited is not None:
            self.on_rate_limited()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> ApiResponse:
        """Send one request and read at most MAX_API_BODY bytes of the answer."""
        with self._http.stream(method, path, json=body) as response:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_API_BODY:
                    raise ValueError("answer too large")
                chunks.append(chunk)
            return ApiResponse(response.status_code, response.headers, b"".join(chunks))

    def submit(
        self, request: GenerationRequest, *, on_answer: Callable[[], None] | None = None
    ) -> str:
        """POST the request once; retry only when it certainly did not reach the server.

        `on_answer` is called the moment a 2xx answer is in hand, before its task id is
        read (the caller holds Ctrl-C from then on). Ctrl-C or SIGTERM during a retry's
        back-off, when no request is on the wire, raises SubmitStoppedError: nothing
        was charged.
        """
        body = request.body()
        on_the_wire = False
        try:
            for attempt in range(SUBMIT_ATTEMPTS):
                last = attempt == SUBMIT_ATTEMPTS - 1
                on_the_wire = True
                try:
                    response = self._send("POST", SUBMIT_PATH, body)
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                    # The connection was never made: nothing was sent, nothing charged.
                    on_the_wire = False
                    if last:
                        raise UnreachableError(
                            f"cannot reach the API at {self._http.base_url} ({_reason(exc)}); "
                            "nothing was sent"
                        ) from exc
                    self.sleep(backoff_delay(attempt))
                    continue
                except (httpx.HTTPError, ValueError) as exc:
                    raise MaybeChargedError(
                        f"the connection failed after the request was sent ({_reason(exc)}); "
                        f"{MAYBE_CHARGED}, and no task id came back",
                        hint="check your 302.AI task log before trying again",
                    ) from exc
                if response.status == 429:
                    on_the_wire = False  # refused: nothing was created
                    self._rate_limited()
                    if last:
                        raise ServerError(
                            "the API is rate limiting requests (429); nothing was charged",
                            hint="wait a minute and try again",
                        )
                    wait = parse_retry_after(response.headers.get("Retry-After"))
                    self.sleep(wait if wait is not None else backoff_delay(attempt, base=1.0))
                    continue
                if 200 <= response.status < 300:
                    if on_answer is not None:
                        on_answer()
                    return self._task_id_from(response)
                if response.status >= 500:
                    raise MaybeChargedError(
                        f"the API failed while taking the request ({response.status}: "
                        f"{server_message(response)}); {MAYBE_CHARGED}",
                        hint="check your 302.AI task log before trying again",
                    )
                raise _error_for_status(response)
        except STOPS as stop:
            if on_the_wire:
                raise
            raise SubmitStoppedError(
                f"{stop_word(stop)} before the request was sent; nothing was charged",
                exit_code=stop_exit_code(stop),
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _task_id_from(response: ApiResponse) -> str:
        try:
            payload = json.loads(response.body.decode("utf-8"))
        except ValueError:
            payload = None
        task_id = extract_task_id(payload)
        if task_id is None:
            what = "no task id" if isinstance(payload, dict) else "an unreadable answer"
            raise MaybeChargedError(
                f"the API accepted the request but sent {what}; {MAYBE_CHARGED}",
                hint="check your 302.AI task log before trying again",
            )
        return task_id

    def fetch_once(self, task_id: str) -> TaskSnapshot:
        """GET the task once; raise RetryableError for what a later try may fix."""
        try:
            response = self._send("GET", fetch_path(task_id))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise RetryableError(
                f"cannot reach the API ({_reason(exc)})", unreachable=True
            ) from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise RetryableError(f"the connection failed ({_reason(exc)})") from exc
        if response.status == 429:
            self._rate_limited()
            raise RetryableError(
                "the API is rate limiting (429)",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if response.status >= 500:
            raise RetryableError(f"the API answered {response.status}: {server_message(response)}")
        if not 200 <= response.status < 300:
            raise _error_for_status(response, task_id=task_id)
        try:
            payload = json.loads(response.body.decode("utf-8"))
            return parse_snapshot(task_id, payload)
        except ValueError as exc:
            raise RetryableError(
                f"the API sent an unreadable task answer: {one_line(str(exc), 120)}"
            ) from exc

    def probe(self, task_id: str) -> ApiResponse:
        """GET the poll path once, no retry, and return whatever status came back.

        For `soul doctor`: a GET creates no task and costs nothing, and the caller, not
        this client, decides what each status means (a 404 for a made-up id is good
        news there). Raises UnreachableError when no connection could be made and
        ServerError when one was made but no answer came (read timeout, dropped).
        """
        try:
            return self._send("GET", fetch_path(task_id))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise UnreachableError(
                f"cannot reach the API at {self._http.base_url} ({_reason(exc)})"
            ) from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise ServerError(
                f"the API at {self._http.base_url} did not answer ({_reason(exc)})"
            ) from exc

    def fetch(
        self, task_id: str, *, deadline: float, on_retry: Callable[[str], None] | None = None
    ) -> TaskSnapshot:
        """GET the task, retrying transient failures with jittered backoff until `deadline`."""
        attempt = 0
        while True:
            try:
                return self.fetch_once(task_id)
            except RetryableError as exc:
                delay = exc.retry_after if exc.retry_after is not None else backoff_delay(attempt)
                if time.monotonic() + delay >= deadline:
                    raise
                if on_retry is not None:
                    on_retry(exc.message)
                self.sleep(delay)
                attempt += 1


def _reason(exc: BaseException) -> str:
    """A short, key-free description of a transport error."""
    # Parentheses dropped: this text goes inside soul's own, e.g. "(_ssl.c:1006)".
    text = one_line(str(exc), 120).replace("(", "").replace(")", "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
