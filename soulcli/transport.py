"""HTTP/1.1 for soul's httpx clients over the standard library's http.client.

httpx's own transport is httpcore, whose import (with h11 and anyio) costs about
15 ms on every networked start, and whose per-request work is a good part of a big
batch's CPU. This one does what soul's clients need and nothing else: keep-alive
connections (at most `max_connections` at a time, idle ones dropped after
`keepalive_expiry` or once the server closed them), TLS with the process's one
context, and httpx's timeouts and exceptions. Proxies it leaves to httpx: when the
environment names one, `direct_transport` gives None and httpx uses its own.

The exceptions carry the distinction a paid request depends on: ConnectError,
ConnectTimeout and PoolTimeout only when no byte of the request was written; every
failure from the first write on is another httpx error, so a POST that may have
reached the server is never taken for one that did not.
"""

from __future__ import annotations

import select
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.client import (
    CONTINUE,
    BadStatusLine,
    HTTPConnection,
    HTTPException,
    HTTPResponse,
    HTTPSConnection,
    IncompleteRead,
    RemoteDisconnected,
)
from typing import NoReturn

import httpx

from soulcli.text import one_line
from soulcli.tls import tls_context

KEEPALIVE_EXPIRY = 5.0  # seconds an idle connection is kept (httpcore's default too)
READ_SIZE = 64 * 1024
SHORT_BODY = "the server closed the connection before the whole body came"

_Origin = tuple[str, str, int]  # scheme, host, port


def direct_transport(max_connections: int) -> Http11Transport | None:
    """Soul's transport for a client, or None (httpx's own) if a proxy is configured.

    httpx reads the proxy variables only for a client without a transport of its
    own, so a proxy user's requests must stay with httpx's, which speaks to proxies.
    """
    # urllib.request is loaded already: httpx imports it, and asks it the same.
    from urllib.request import getproxies

    proxies = getproxies()
    if any(proxies.get(scheme) for scheme in ("http", "https", "all")):
        return None
    return Http11Transport(max_connections=max_connections)


class Http11Transport(httpx.BaseTransport):
    """Sends each request on a connection of its own origin, reusing idle ones."""

    def __init__(
        self,
        *,
        max_connections: int = 32,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
        tls: Callable[[], ssl.SSLContext] = tls_context,
    ) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self._max_idle = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._tls = tls
        self._lock = threading.Lock()
        self._idle: dict[_Origin, list[tuple[float, HTTPConnection]]] = {}
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        acquired = False
        connection: HTTPConnection | None = None
        try:
            # Inside the try, so that a Ctrl-C right after it still gives the slot back.
            acquired = self._slots.acquire(timeout=timeouts.get("pool"))  # None: no limit
            if not acquired:
                raise httpx.PoolTimeout("no connection came free in time", request=request)
            origin = _origin(request)
            connection = self._idle_connection(origin) or self._connect(
                origin, timeouts.get("connect"), request
            )
            # From here on bytes may reach the server: no error below is a connect error.
            response = _exchange(connection, request, timeouts)
            # http.client decodes header bytes as latin-1; httpx wants the bytes back (a
            # str it encodes as ASCII, and a UTF-8 header would fail an answer in hand).
            headers = [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in response.getheaders()
            ]
            return httpx.Response(
                response.status,
                headers=headers,
                stream=_ResponseStream(self, origin, connection, response, request),
                extensions={
                    "http_version": b"HTTP/1.1" if response.version == 11 else b"HTTP/1.0",
                    "reason_phrase": response.reason.encode("latin-1", "replace"),
                },
            )
        except BaseException:
            if connection is not None:
                connection.close()
            if acquired:
                self._slots.release()
            raise

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [conn for conns in self._idle.values() for _, conn in conns]
            self._idle.clear()
        for connection in idle:
            connection.close()

    def _idle_connection(self, origin: _Origin) -> HTTPConnection | None:
        """The most recently used idle connection that is still good, if any."""
        cutoff = time.monotonic() - self._keepalive_expiry
        stale: list[HTTPConnection] = []
        found: HTTPConnection | None = None
        with self._lock:
            idle = self._idle.get(origin, [])
            # Oldest first: every expired one goes, not only those above the one taken
            # (after a burst, the rest would hold their sockets for the whole run).
            while idle and idle[0][0] < cutoff:
                stale.append(idle.pop(0)[1])
            while idle:
                _, connection = idle.pop()
                # A readable idle socket is one the server closed (or sent junk on):
                # a request written there would fail after it may have been read.
                if _readable(connection.sock):
                    stale.append(connection)
                    continue
                found = connection
                break
        for connection in stale:
            connection.close()
        return found

    def _connect(
        self, origin: _Origin, timeout: float | None, request: httpx.Request
    ) -> HTTPConnection:
        scheme, host, port = origin
        connection: HTTPConnection
        if scheme == "https":
            connection = HTTPSConnection(host, port, timeout=timeout, context=self._tls())
        else:
            connection = HTTPConnection(host, port, timeout=timeout)
        # Never reconnect behind soul's back in the middle of sending a request.
        connection.auto_open = 0
        connection.response_class = _FinalResponse
        try:
            connection.connect()
        except TimeoutError as exc:
            connection.close()
            raise httpx.ConnectTimeout(_text(exc, "timed out"), request=request) from exc
        except (OSError, ValueError) as exc:  # refused, no such host, TLS handshake failed
            connection.close()
            raise httpx.ConnectError(_text(exc, "connection failed"), request=request) from exc
        return connection

    def _done_with(self, origin: _Origin, connection: HTTPConnection, reusable: bool) -> None:
        """A response was closed: keep its connection for the next request, or close it."""
        try:
            if reusable:
                with self._lock:
                    idle = self._idle.setdefault(origin, [])
                    if not self._closed and len(idle) < self._max_idle:
                        idle.append((time.monotonic(), connection))
                        return
            connection.close()
        finally:
            self._slots.release()


class _FinalResponse(HTTPResponse):
    """http.client's response, passing over every informational (1xx) answer.

    http.client passes over only 100 Continue: a 103 Early Hints would be taken for
    the answer, and the real one left on the connection for the next request. It
    also refuses the framing http.client would quietly read until the connection
    closes (waiting out the read timeout), as httpx's own transport refuses it.
    """

    def begin(self) -> None:
        super().begin()
        if self.status == 101:  # soul asks for no protocol switch
            raise HTTPException("an unrequested protocol switch (101)")
        encoding = self.headers.get("transfer-encoding")
        if encoding is not None and encoding.strip().lower() != "chunked":
            raise HTTPException(f"an unsupported transfer encoding: {encoding}")
        lengths = {value.strip() for value in self.headers.get_all("content-length") or []}
        unreadable = len(lengths) > 1 or self.length is None  # (None: not a number)
        # A HEAD, 204 or 304 answer has no body whatever it says: http.client's length 0.
        if lengths and unreadable and not self.chunked and self.length != 0:
            raise HTTPException(f"a bad content length: {', '.join(sorted(lengths))}")

    def _read_status(self) -> tuple[str, int, str]:
        version, status, reason = super()._read_status()  # type: ignore[misc]
        if 100 <= status < 200 and status != 101:
            return version, CONTINUE, reason  # begin() reads its headers and goes on
        return version, status, reason


class _ResponseStream(httpx.SyncByteStream):
    """A response's body as it arrives; closing it gives the connection back."""

    def __init__(
        self,
        transport: Http11Transport,
        origin: _Origin,
        connection: HTTPConnection,
        response: HTTPResponse,
        request: httpx.Request,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection = connection
        self._response = response
        self._request = request
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        if response.status in (204, 304):
            return  # no body, whatever the headers say (http.client takes its length as 0)
        while True:
            try:
                chunk = response.read1(READ_SIZE)
            except BaseException as exc:
                _raise_read_error(exc, self._request)
            if not chunk:
                break
            yield chunk
        if response.length:  # http.client ends a short Content-Length body quietly
            raise httpx.RemoteProtocolError(SHORT_BODY, request=self._request)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True  # httpx calls this once; the flag is for other callers
        reusable = False
        try:
            response = self._response
            # Reusable only once the whole body was read off a connection kept open. (A
            # Content-Length body read to its end leaves the response open: length 0.)
            whole = response.isclosed() or response.length == 0
            response.close()  # its file only; the connection keeps the socket
            reusable = whole and not response.will_close and self._connection.sock is not None
        finally:  # a Ctrl-C in the lines above must still give the slot back
            self._transport._done_with(self._origin, self._connection, reusable)


def _exchange(
    connection: HTTPConnection, request: httpx.Request, timeouts: dict[str, float | None]
) -> HTTPResponse:
    """Write the request and read the answer's status line and headers."""
    sock = connection.sock
    assert sock is not None
    body = request.read()
    # httpx frames a body of unknown length as chunked; http.client then must too.
    chunked = "transfer-encoding" in request.headers
    try:
        sock.settimeout(timeouts.get("write"))
        target = request.url.raw_path.decode("ascii")
        connection.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in request.headers.raw:
            connection.putheader(name, value)
        connection.endheaders(body if chunked else body or None, encode_chunked=chunked)
    except TimeoutError as exc:
        raise httpx.WriteTimeout(_text(exc, "timed out"), request=request) from exc
    except OSError as exc:
        # A server may answer (a 401, say) and hang up before it read the whole
        # request: its answer is worth more than the broken write.
        try:
            sock.settimeout(timeouts.get("read"))
            return connection.getresponse()
        except Exception:  # (a Ctrl-C here stays a Ctrl-C)
            raise httpx.WriteError(_text(exc, "write failed"), request=request) from exc
    except (HTTPException, ValueError) as exc:
        raise httpx.WriteError(_text(exc, "write failed"), request=request) from exc
    try:
        sock.settimeout(timeouts.get("read"))
        return connection.getresponse()
    except BaseException as exc:
        _raise_read_error(exc, request)


def _raise_read_error(exc: BaseException, request: httpx.Request) -> NoReturn:
    if isinstance(exc, TimeoutError):
        raise httpx.ReadTimeout(_text(exc, "timed out"), request=request) from exc
    if isinstance(exc, IncompleteRead):  # a cut chunked body
        raise httpx.RemoteProtocolError(SHORT_BODY, request=request) from exc
    if isinstance(exc, BadStatusLine) and not isinstance(exc, RemoteDisconnected):
        line = one_line(str(exc), 60)
        raise httpx.RemoteProtocolError(f"a bad status line: {line}", request=request) from exc
    if isinstance(exc, HTTPException):  # no answer, too many headers, a bad chunk size...
        raise httpx.RemoteProtocolError(_text(exc, type(exc).__name__), request=request) from exc
    if isinstance(exc, (OSError, ValueError)):
        raise httpx.ReadError(_text(exc, "read failed"), request=request) from exc
    raise exc


def _origin(request: httpx.Request) -> _Origin:
    url = request.url
    if url.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"cannot send {url.scheme}:// requests", request=request)
    # raw_host is the name as httpx encodes it (IDNA 2008), the one its Host header
    # carries; the str form would be encoded again by socket and ssl (IDNA 2003).
    host = url.raw_host.decode("ascii")
    return url.scheme, host, url.port or (443 if url.scheme == "https" else 80)


def _text(exc: BaseException, default: str) -> str:
    return str(exc) or default


def _readable(sock: socket.socket | None) -> bool:
    if sock is None or sock.fileno() < 0:
        return True
    if sys.platform == "win32" or not hasattr(select, "poll"):
        return bool(select.select([sock], [], [], 0)[0])
    poll = select.poll()
    poll.register(sock, select.POLLIN)
    return bool(poll.poll(0))
