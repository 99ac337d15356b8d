"""SIGTERM to the real server: streams end cleanly, answers in progress finish, nothing new is let in, exit in time."""

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers.site import Site, signed_in_tokens
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e]
GRACE_SECONDS = 4
SITE_ENV = {"MUSTER_MCP_APP": "tests.servers.identity_app:app", "MUSTER_SERVER_SHUTDOWN_GRACE": f"{GRACE_SECONDS}s"}
BOUND_SECONDS = 20.0
STREAMS = 3


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with Site(tmp_path / "site", workers=2, extra_env=SITE_ENV) as running:  # as make run starts it
        yield running


def listen(site: Site, token: str, started: threading.Event, ends: list[str]) -> None:
    """A GET /mcp event stream read to its end; records "clean" or the error that cut it."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    try:
        with httpx.stream("GET", f"{site.base_url}/mcp", headers=headers, timeout=BOUND_SECONDS) as answer:
            for _ in answer.iter_raw():
                started.set()
        ends.append("clean")  # iter_raw raises on a cut connection or a chunked body without its end
    except httpx.HTTPError as error:
        ends.append(repr(error))


def refused(site: Site) -> bool:
    try:
        socket.create_connection(("127.0.0.1", site.port), timeout=1).close()
    except OSError:
        return True
    return False


def test_sigterm_ends_open_streams_cleanly_finishes_a_request_in_progress_refuses_new_ones_and_exits(
    site: Site,
) -> None:
    token = signed_in_tokens(site, site.create_public_client())["access_token"]
    ends: list[str] = []
    listeners = []
    for _ in range(STREAMS):
        started = threading.Event()
        listener = threading.Thread(target=listen, args=(site, token, started, ends), daemon=True)
        listener.start()
        assert started.wait(BOUND_SECONDS), "a stream never started"
        listeners.append(listener)
    body = b"grant_type=refresh_token&refresh_token=unknown"
    in_progress = socket.create_connection(("127.0.0.1", site.port), timeout=BOUND_SECONDS)
    in_progress.sendall(
        b"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:10])
    )
    process = site._process
    assert process is not None

    stopping = time.monotonic()
    os.kill(process.pid, signal.SIGTERM)
    for listener in listeners:
        listener.join(BOUND_SECONDS)
    assert ends == ["clean"] * STREAMS

    in_progress.sendall(body[10:])  # the rest of a request that was under way at SIGTERM
    answer = b""
    while chunk := in_progress.recv(65536):
        answer += chunk
    in_progress.close()
    assert answer.startswith(b"HTTP/1.1 401")  # no client: the token endpoint's own JSON error, whole
    assert b"\r\nconnection: close\r\n" in answer
    assert answer.endswith(b'"error_description": "Client authentication failed."}')
    assert eventually(lambda: refused(site), seconds=BOUND_SECONDS)
    assert process.wait(BOUND_SECONDS) == 0  # the supervisor, once both workers have stopped
    assert time.monotonic() - stopping < GRACE_SECONDS + BOUND_SECONDS / 2
