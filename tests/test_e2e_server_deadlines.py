"""Slow and silent clients against the real server: header, request and idle deadlines, and the connection cap."""

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import httpx
import pytest

from tests.servers.site import Site

pytestmark = [pytest.mark.e2e]

HEADER_SECONDS, REQUEST_SECONDS, IDLE_SECONDS = 2, 3, 2
SHORT_DEADLINES = {
    "MUSTER_SERVER_READ_HEADER_TIMEOUT": f"{HEADER_SECONDS}s",
    "MUSTER_SERVER_READ_TIMEOUT": f"{REQUEST_SECONDS}s",
    "MUSTER_SERVER_IDLE_TIMEOUT": f"{IDLE_SECONDS}s",
}
MAX_CONNECTIONS = 3
BOUND_SECONDS = 20.0  # every wait for the server ends by then, however loaded the machine
EARLY = 0.5  # a closing may be seen this much before its deadline (clocks of two processes, socket buffers)
HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with Site(tmp_path_factory.mktemp("deadlines"), extra_env=SHORT_DEADLINES) as running:
        yield running


@pytest.fixture(scope="module")
def capped_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    extra_env = {"MUSTER_SERVER_MAX_CONNECTIONS": str(MAX_CONNECTIONS)}
    with Site(tmp_path_factory.mktemp("capped"), extra_env=extra_env) as running:
        yield running


def connect(site: Site) -> socket.socket:
    return socket.create_connection(("127.0.0.1", site.port), timeout=BOUND_SECONDS)


def dribble_until_closed(sock: socket.socket, data: bytes, interval: float = 0.5) -> tuple[float, bytes]:
    """Send `data` a byte every `interval` until the server closes; the seconds that took and what it answered."""
    started = time.monotonic()
    answer = b""
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break
        sock.settimeout(interval)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        answer += chunk
        if not chunk:
            break
    else:
        raise AssertionError(f"the server read all {len(data)} bytes without closing")
    return time.monotonic() - started, answer


def seconds_until_closed(sock: socket.socket) -> float:
    """Wait (bounded) for the server to close; fails on any answer."""
    started = time.monotonic()
    sock.settimeout(BOUND_SECONDS)
    try:
        data = sock.recv(65536)
    except ConnectionResetError:
        data = b""
    assert data == b"", f"expected a silent close, got {data[:200]!r}"
    return time.monotonic() - started


def served(site: Site) -> int:
    return httpx.get(site.base_url + "/health", timeout=BOUND_SECONDS).status_code


def status_or_error(site: Site) -> int | str:
    """/health's status, or the transport error of a connection the server refused while reading our request."""
    try:
        return served(site)
    except httpx.TransportError as error:
        return repr(error)


def read_answer(sock: socket.socket) -> bytes:
    """One HTTP answer with a Content-Length, read whole."""
    sock.settimeout(BOUND_SECONDS)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the answer's headers: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed inside the answer's body"
        body += chunk
    return head


def test_a_connection_that_sends_nothing_is_closed_at_the_header_deadline_while_others_are_served(site: Site) -> None:
    with connect(site) as silent, ThreadPoolExecutor(1) as pool:
        closed = pool.submit(seconds_until_closed, silent)

        assert served(site) == 200
        assert HEADER_SECONDS - EARLY <= closed.result(timeout=BOUND_SECONDS) < BOUND_SECONDS


def test_headers_sent_a_byte_at_a_time_are_cut_at_the_header_deadline(site: Site) -> None:
    slow_headers = HEALTH[:-2] + b"X-Padding: " + b"a" * 200 + b"\r\n\r\n"
    with connect(site) as slow, ThreadPoolExecutor(1) as pool:
        closed = pool.submit(dribble_until_closed, slow, slow_headers)

        assert served(site) == 200
        seconds, answer = closed.result(timeout=BOUND_SECONDS * 2)
    assert answer == b""
    assert seconds >= HEADER_SECONDS - EARLY


def test_a_body_sent_a_byte_at_a_time_is_cut_at_the_request_deadline(site: Site) -> None:
    head = b"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    body = b"grant_type=refresh_token&refresh_token=" + b"a" * 60
    with connect(site) as slow, ThreadPoolExecutor(1) as pool:
        slow.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body))
        closed = pool.submit(dribble_until_closed, slow, body)

        assert served(site) == 200
        seconds, answer = closed.result(timeout=BOUND_SECONDS * 2)
    assert answer == b""
    assert seconds >= REQUEST_SECONDS - HEADER_SECONDS - EARLY  # its headers took no time


def test_a_kept_alive_connection_is_closed_after_the_idle_timeout(site: Site) -> None:
    with connect(site) as kept:
        kept.sendall(HEALTH)
        assert read_answer(kept).startswith(b"HTTP/1.1 200")

        assert IDLE_SECONDS - EARLY <= seconds_until_closed(kept) < BOUND_SECONDS


def test_requests_that_each_arrive_in_time_keep_a_connection_past_the_header_deadline(site: Site) -> None:
    with connect(site) as kept:
        started = time.monotonic()
        for _ in range(4):
            kept.sendall(HEALTH)
            assert read_answer(kept).startswith(b"HTTP/1.1 200")
            time.sleep(HEADER_SECONDS / 2)

        assert time.monotonic() - started > HEADER_SECONDS


def test_a_connection_beyond_the_cap_is_answered_503_json_and_closed(capped_site: Site) -> None:
    with ExitStack() as stack:
        held = [stack.enter_context(connect(capped_site)) for _ in range(MAX_CONNECTIONS)]
        held[-1].sendall(HEALTH)  # answered: the cap counts connections, and this one is within it
        assert read_answer(held[-1]).startswith(b"HTTP/1.1 200")

        with connect(capped_site) as extra:
            extra.settimeout(BOUND_SECONDS)
            answer = b""
            while chunk := extra.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 503")
        assert answer.endswith(b'"error":"temporarily_unavailable","error_description":"too many connections"}')


def test_a_connection_within_the_cap_is_served_once_another_closes(capped_site: Site) -> None:
    with ExitStack() as stack:
        held = [stack.enter_context(connect(capped_site)) for _ in range(MAX_CONNECTIONS)]
        held.pop().close()
        deadline = time.monotonic() + BOUND_SECONDS
        while (status := status_or_error(capped_site)) != 200 and time.monotonic() < deadline:
            time.sleep(0.1)  # the server sees the close a moment later

        assert status == 200
