"""The http.client transport: what it sends, how it reuses connections, which errors it raises."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from soulcli import transport as transport_module
from soulcli.client import ApiClient, RetryableError
from soulcli.transport import Http11Transport, _origin

# A handler gets each accepted connection and the request bytes read so far.
Handler = Callable[[socket.socket], None]

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


class ScriptedServer:
    """A loopback TCP server that runs `handler` for each connection it accepts."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.received: list[bytes] = []
        self._threads: list[threading.Thread] = []
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.handler(conn)

    def read_request(self, conn: socket.socket) -> bytes:
        """One request's head and its Content-Length body."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            body += conn.recv(65536)
        self.received.append(head + b"\r\n\r\n" + body)
        return data

    def close(self) -> None:
        self._stop = True
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(handler: Handler) -> ScriptedServer:
        server = ScriptedServer(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def client(transport: Http11Transport, **timeouts: float) -> httpx.Client:
    return httpx.Client(transport=transport, timeout=httpx.Timeout(5.0, **timeouts))


def test_sends_the_request_as_given_and_reads_the_answer(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    def answer(conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(OK)

    server = serve(answer)
    with client(Http11Transport()) as http:
        response = http.post(
            f"{server.url}/v1/tasks?x=1&y=%20", json={"a": 1}, headers={"Authorization": "k"}
        )
    assert response.status_code == 200
    assert response.json() == {}
    assert response.headers["content-type"] == "application/json"
    assert response.http_version == "HTTP/1.1"
    sent = server.received[0]
    head, _, body = sent.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/tasks?x=1&y=%20 HTTP/1.1"
    assert f"host: 127.0.0.1:{server.port}".encode() in [line.lower() for line in lines]
    assert b"Authorization: k" in lines
    assert sum(line.lower().startswith(b"host:") for line in lines) == 1
    assert body == b'{"a":1}'


def test_keeps_one_connection_for_requests_in_turn(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    def answer_many(conn: socket.socket) -> None:
        while server.read_request(conn):
            conn.sendall(OK)

    server = serve(answer_many)
    with client(Http11Transport()) as http:
        for _ in range(5):
            assert http.get(server.url).status_code == 200
    assert server.accepted == 1
    assert len(server.received) == 5


def test_a_chunked_answer_is_read_whole_and_the_connection_kept(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    def chunked(conn: socket.socket) -> None:
        while server.read_request(conn):
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )

    server = serve(chunked)
    with client(Http11Transport()) as http:
        assert http.get(server.url).text == "hello world"
        assert http.get(server.url).text == "hello world"
    assert server.accepted == 1


def test_an_idle_connection_the_server_closed_is_not_written_to(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    # The server answers one request per connection but says keep-alive, then closes:
    # a POST written on that connection would fail after the server may have read it.
    def one_then_close(conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(OK)

    server = serve(one_then_close)
    with client(Http11Transport()) as http:
        assert http.post(server.url, json={}).status_code == 200
        time.sleep(0.2)  # the server's close arrives
        assert http.post(server.url, json={}).status_code == 200
    assert server.accepted == 2


def test_idle_connections_expire(serve: Callable[[Handler], ScriptedServer]) -> None:
    def answer_many(conn: socket.socket) -> None:
        while server.read_request(conn):
            conn.sendall(OK)

    server = serve(answer_many)
    with client(Http11Transport(keepalive_expiry=0.05)) as http:
        http.get(server.url)
        time.sleep(0.1)
        http.get(server.url)
    assert server.accepted == 2


def test_nothing_listening_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with client(Http11Transport()) as http, pytest.raises(httpx.ConnectError):
        http.post(f"http://127.0.0.1:{port}/v1", json={})


def test_a_failed_tls_handshake_is_a_connect_error_and_sends_nothing(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    def not_tls(conn: socket.socket) -> None:
        server.received.append(conn.recv(65536))
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    server = serve(not_tls)
    with client(Http11Transport()) as http, pytest.raises(httpx.ConnectError):
        http.post(f"https://127.0.0.1:{server.port}/v1", json={"secret": "body"})
    assert b"secret" not in b"".join(server.received)  # only a TLS hello went out


def test_a_close_after_the_request_arrived_is_not_a_connect_error(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    def read_and_hang_up(conn: socket.socket) -> None:
        server.read_request(conn)

    server = serve(read_and_hang_up)
    with client(Http11Transport()) as http, pytest.raises(httpx.HTTPError) as caught:
        http.post(server.url, json={"n": 1})
    assert isinstance(caught.value, httpx.RemoteProtocolError)
    assert not isinstance(caught.value, (httpx.ConnectError, httpx.ConnectTimeout))
    assert server.received and server.received[0].endswith(b'{"n":1}')


def test_a_short_body_is_an_error_not_a_short_answer(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    def short(conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}")

    server = serve(short)
    with client(Http11Transport()) as http, pytest.raises(httpx.RemoteProtocolError):
        http.get(server.url)


def test_a_silent_server_is_a_read_timeout(serve: Callable[[Handler], ScriptedServer]) -> None:
    release = threading.Event()

    def silent(conn: socket.socket) -> None:
        server.read_request(conn)
        release.wait(5)

    server = serve(silent)
    with client(Http11Transport(), read=0.2) as http, pytest.raises(httpx.ReadTimeout):
        http.get(server.url)
    release.set()


def test_a_full_pool_is_a_pool_timeout_and_a_closed_answer_frees_it(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    def answer_many(conn: socket.socket) -> None:
        while server.read_request(conn):
            conn.sendall(OK)

    server = serve(answer_many)
    with client(Http11Transport(max_connections=1), pool=0.1) as http:
        with http.stream("GET", server.url) as held:
            with pytest.raises(httpx.PoolTimeout):
                http.get(server.url)
            assert held.status_code == 200
        assert http.get(server.url).status_code == 200  # the slot came back
        for _ in range(3):  # errors give their slot back too
            with pytest.raises(httpx.ConnectError):
                http.get("http://127.0.0.1:1/")
        assert http.get(server.url).status_code == 200


def test_a_proxy_from_the_environment_still_carries_api_requests(
    serve: Callable[[Handler], ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx keeps its own transport for proxies; the API client must not bypass them.
    def refusing_proxy(conn: socket.socket) -> None:
        server.received.append(conn.recv(65536))
        conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    server = serve(refusing_proxy)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", server.url)
    with ApiClient("https://api.302.ai", "sk-proxy-test") as api, pytest.raises(RetryableError):
        api.fetch_once("higgsfield_0123456789ab")
    assert server.received[0].startswith(b"CONNECT api.302.ai:443 HTTP/1.1")
    assert b"sk-proxy-test" not in b"".join(server.received)  # the key goes only to the API


def test_a_utf8_header_does_not_cost_the_answer_or_a_connection(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    def utf8_header(conn: socket.socket) -> None:
        while server.read_request(conn):
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nX-Msg: \xe6\x88\x90\xe5\x8a\x9f\r\nContent-Length: 2\r\n\r\n{}"
            )

    server = serve(utf8_header)
    with client(Http11Transport(max_connections=1), pool=0.5) as http:
        for _ in range(3):  # a slot lost each time would make the second a PoolTimeout
            response = http.post(server.url, json={})
            assert response.json() == {}
            assert response.headers.raw[0] == (b"X-Msg", "成功".encode())


def test_an_informational_answer_is_passed_over(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    # A 103 taken for the answer would leave the real one for the next request.
    def early_hints(conn: socket.socket) -> None:
        while data := server.read_request(conn):
            if data.startswith(b"POST"):
                conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
                body = b'{"task_id":"t1"}'
            else:
                body = b'{"status":"running"}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    server = serve(early_hints)
    with client(Http11Transport()) as http:
        assert http.post(server.url, json={}).json() == {"task_id": "t1"}
        assert http.get(server.url).json() == {"status": "running"}
    assert server.accepted == 1


def test_a_no_content_answer_has_no_body_whatever_its_headers_say(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    def chunked_204(conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n")
        time.sleep(3)

    server = serve(chunked_204)
    started = time.monotonic()
    with client(Http11Transport(), read=2.0) as http:
        assert http.get(server.url).status_code == 204
    assert time.monotonic() - started < 1.0  # not a wait for a body that never comes


def test_an_answer_before_the_whole_request_was_read_is_the_answer(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    def refuse_early(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" + b"\x00" * 4)

    server = serve(refuse_early)
    with client(Http11Transport()) as http:
        assert http.post(server.url, content=b"x" * 8_000_000).status_code == 401


def test_a_body_of_unknown_length_is_sent_chunked(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    def record(conn: socket.socket) -> None:
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            data += conn.recv(65536)
        server.received.append(data)
        conn.sendall(OK)

    def parts() -> Iterator[bytes]:
        yield b"hello "
        yield b"world"

    server = serve(record)
    with client(Http11Transport()) as http:
        assert http.post(server.url, content=parts()).status_code == 200
    assert server.received[0].endswith(b"chunked\r\n\r\nB\r\nhello world\r\n0\r\n\r\n")


def test_an_international_host_name_is_reached_as_httpx_names_it() -> None:
    # IDNA 2008, as in httpx's Host header; Python's own codec (2003) makes faß fass.
    request = httpx.Request("GET", "https://faß.de/x")
    assert _origin(request) == ("https", "xn--fa-hia.de", 443)
    assert request.headers["Host"] == "xn--fa-hia.de"


# http.client would read the first four until the connection closes: a user would wait
# out the read timeout for an answer httpx's own transport refused at once. The last
# three the server ends by closing the connection.
@pytest.mark.parametrize(
    ("answer", "then_close", "says"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}", False, "a bad content length: abc"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", False, "2, 3"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n", False, "gzip"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", False, "protocol switch"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{}", True, "whole body came"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", True, "a bad status line: HTTP/1.1 2x0 OK"),
        (b"", True, "Remote end closed connection without response"),
    ],
)
def test_a_broken_answer_is_an_error_at_once_that_says_what_broke(
    serve: Callable[[Handler], ScriptedServer], answer: bytes, then_close: bool, says: str
) -> None:
    def broken(conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(answer)
        if not then_close:
            time.sleep(3)

    server = serve(broken)
    started = time.monotonic()
    with client(Http11Transport(), read=2.0) as http, pytest.raises(httpx.RemoteProtocolError) as e:
        http.post(server.url, json={})
    assert time.monotonic() - started < 1.0
    assert says in str(e.value)


def test_idle_connections_under_the_one_in_use_expire_too(
    serve: Callable[[Handler], ScriptedServer],
) -> None:
    ended: list[int] = []

    def answer_slowly(conn: socket.socket) -> None:
        while server.read_request(conn):
            time.sleep(0.2)  # so that the burst's four requests overlap
            conn.sendall(OK)
        ended.append(1)  # the client closed this connection

    server = serve(answer_slowly)
    with client(Http11Transport(keepalive_expiry=0.3)) as http:
        burst = [threading.Thread(target=http.get, args=(server.url,)) for _ in range(4)]
        for thread in burst:
            thread.start()
        for thread in burst:
            thread.join()
        assert server.accepted == 4
        # One request at a time from now on keeps the newest connection busy; the three
        # under it expire and must be closed, though none of them is taken again.
        for _ in range(4):  # 1 s, the expiry three times over
            http.get(server.url)
            time.sleep(0.05)
        time.sleep(0.1)
        assert server.accepted == 4
        assert len(ended) == 3


def test_a_stop_while_an_answer_is_closed_still_frees_its_slot(
    serve: Callable[[Handler], ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    def answer_many(conn: socket.socket) -> None:
        while server.read_request(conn):
            conn.sendall(OK)

    stops = [KeyboardInterrupt()]
    real_close = transport_module._FinalResponse.close

    def interrupted_close(self: transport_module._FinalResponse) -> None:
        real_close(self)
        if stops:
            raise stops.pop()

    monkeypatch.setattr(transport_module._FinalResponse, "close", interrupted_close)
    server = serve(answer_many)
    with client(Http11Transport(max_connections=1), pool=0.2) as http:
        with pytest.raises(KeyboardInterrupt):
            http.get(server.url)
        assert http.get(server.url).status_code == 200  # not a PoolTimeout
