"""The upstream proxy against a real MCP-shaped server in another process: headers, streaming, cancellation, errors."""

import asyncio
import json
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mcp_gateway.identity import SCOPE_KEY, Identity
from mcp_gateway.proxy import UpstreamProxy
from tests.servers.asgi_process import serving
from tests.servers.processes import free_port

OUR_TOKEN = "our-access-token-must-stay-here"
ID_TOKEN = "header.upstream-id-token.signature"
SSE_EVENTS = b"data: 0\n\ndata: 1\n\ndata: 2\n\n"

Message = MutableMapping[str, Any]


@dataclass
class Upstream:
    base_url: str
    events_log: Path

    def url(self, path: str) -> str:
        return self.base_url + path

    async def saw(self, line: str, within: float) -> bool:
        """Whether `line` appears in the upstream's events log within `within` seconds."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.events_log.exists() and line in self.events_log.read_text().splitlines():
                return True
            await asyncio.sleep(0.02)
        return False


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    events_log = tmp_path_factory.mktemp("upstream") / "events.log"
    with serving("tests.servers.upstream_mcp:app", {"UPSTREAM_EVENTS_LOG": str(events_log)}) as base_url:
        yield Upstream(base_url, events_log)


@dataclass(frozen=True)
class SignedInUpstream(Identity):
    """An identity whose upstream id_token is given here, not read from a sign-in; it counts the reads."""

    upstream_id_token: str | None = None
    reads: list[str] = field(default_factory=list, compare=False)

    async def id_token(self) -> str | None:
        self.reads.append(self.session_id)
        return self.upstream_id_token


def identity(id_token: str | None = ID_TOKEN) -> SignedInUpstream:
    return SignedInUpstream(
        subject="alice",
        user_id=1,
        client_id="client-1",
        scopes=("mcp",),
        session_id="family-1",
        expires=datetime.now(UTC) + timedelta(hours=1),
        upstream_id_token=id_token,
    )


def scope(
    method: str = "POST",
    headers: list[tuple[bytes, bytes]] | None = None,
    query: bytes = b"",
    who: Identity | None = None,
) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": "/mcp",
        "query_string": query,
        "headers": headers if headers is not None else [(b"authorization", f"Bearer {OUR_TOKEN}".encode())],
        SCOPE_KEY: who or identity(),
    }


@dataclass
class Answer:
    """What the proxy sent, with the time (since the call began) of each message."""

    messages: list[tuple[float, Message]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def status(self) -> int:
        return self.messages[0][1]["status"]

    @property
    def headers(self) -> dict[str, str]:
        return {name.decode(): value.decode() for name, value in self.messages[0][1]["headers"]}

    @property
    def header_names(self) -> list[bytes]:
        return [name for name, _ in self.messages[0][1]["headers"]]

    @property
    def body(self) -> bytes:
        return b"".join(message.get("body", b"") for _, message in self.messages[1:])

    def json(self) -> Any:
        return json.loads(self.body)


def gateway_receive(body: bytes) -> Any:
    """Like the gateway: the buffered body once, then nothing until the client goes away (never, here)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        if pending:
            return pending.pop()
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    return receive


async def call(proxy: UpstreamProxy, request: dict[str, Any], body: bytes = b"") -> Answer:
    answer = Answer()
    start = time.monotonic()

    async def send(message: Message) -> None:
        answer.messages.append((time.monotonic() - start, message))

    try:
        await proxy(request, gateway_receive(body), send)
    finally:
        answer.seconds = time.monotonic() - start
        await proxy.aclose()
    return answer


def run(proxy: UpstreamProxy, request: dict[str, Any], body: bytes = b"") -> Answer:
    return asyncio.run(call(proxy, request, body))


def test_post_is_forwarded_without_our_bearer_token(upstream: Upstream) -> None:
    # Given a proxy to the upstream's MCP URL
    proxy = UpstreamProxy(upstream.url("/mcp"), 5.0, forward_id_token=False)
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    headers = [
        (b"authorization", f"Bearer {OUR_TOKEN}".encode()),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
        (b"mcp-session-id", b"session-abc"),
        (b"mcp-protocol-version", b"2025-06-18"),
        (b"mcp-method", b"tools/list"),
    ]

    # When a client POSTs through it
    answer = run(proxy, scope("POST", headers), body)

    # Then the upstream got the request, minus our access token
    seen = answer.json()
    got = dict(seen["headers"])
    assert seen["method"] == "POST"
    assert seen["body"] == body.decode()
    assert "authorization" not in got
    assert OUR_TOKEN not in json.dumps(seen)
    assert got["content-type"] == "application/json"
    assert got["accept"] == "application/json, text/event-stream"
    assert got["mcp-session-id"] == "session-abc"
    assert got["mcp-protocol-version"] == "2025-06-18"
    assert got["mcp-method"] == "tools/list"
    # And its answer came back, headers included, ending with a final empty body message
    assert answer.status == 200
    assert answer.headers["mcp-session-id"] == "upstream-session-1"
    assert answer.headers["content-type"] == "application/json"
    assert answer.messages[-1][1] == {"type": "http.response.body", "body": b""}


def test_method_and_query_string_reach_the_upstream_url(upstream: Upstream) -> None:
    proxy = UpstreamProxy(upstream.url("/mcp?tenant=a"), 5.0, forward_id_token=False)

    deleted = run(proxy, scope("DELETE", query=b"x=1"))
    got = run(proxy, scope("GET"))

    assert (deleted.json()["method"], deleted.json()["query"]) == ("DELETE", "tenant=a&x=1")
    assert (got.json()["method"], got.json()["query"]) == ("GET", "tenant=a")


def test_forward_id_token_sends_the_upstream_id_token_as_bearer(upstream: Upstream) -> None:
    forwarding = UpstreamProxy(upstream.url("/mcp"), 5.0, forward_id_token=True)
    not_forwarding = UpstreamProxy(upstream.url("/mcp"), 5.0, forward_id_token=False)

    forwarded = dict(run(forwarding, scope()).json()["headers"])
    without_id_token = dict(run(forwarding, scope(who=identity(id_token=None))).json()["headers"])
    unread = identity()
    switched_off = dict(run(not_forwarding, scope(who=unread)).json()["headers"])

    assert forwarded["authorization"] == f"Bearer {ID_TOKEN}"
    assert "authorization" not in without_id_token
    assert "authorization" not in switched_off
    assert unread.reads == []  # without forwardIdToken the id_token is never even looked up


def test_sse_events_arrive_before_the_stream_ends(upstream: Upstream) -> None:
    # Given an upstream that streams 3 events 0.5 s apart
    proxy = UpstreamProxy(upstream.url("/sse?events=3&delay=0.5&tag=timing"), 5.0, forward_id_token=False)

    # When a client opens the stream through the proxy
    answer = run(proxy, scope("GET", [(b"accept", b"text/event-stream")]))

    # Then the first event reached it long before the last one was produced
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/event-stream"
    assert "content-length" not in answer.headers
    assert answer.body == SSE_EVENTS
    first_event = next(at for at, message in answer.messages[1:] if message["body"])
    assert first_event < 0.4
    assert answer.seconds >= 0.9
    assert all(message["more_body"] for _, message in answer.messages[1:-1])
    assert not answer.messages[-1][1].get("more_body", False)


def test_client_disconnect_closes_the_upstream_stream(upstream: Upstream) -> None:
    # Given a long upstream stream (10 events, 0.5 s apart)
    proxy = UpstreamProxy(upstream.url("/sse?events=10&delay=0.5&tag=cancelled"), 5.0, forward_id_token=False)

    async def disconnect_after_first_event() -> bool:
        first_event = asyncio.Event()

        async def send(message: Message) -> None:
            if message.get("body"):  # the client got an event, then stops reading: we are stuck in send
                first_event.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(proxy(scope("GET"), gateway_receive(b""), send))
        await asyncio.wait_for(first_event.wait(), 2)
        # When the client goes away, and the gateway cancels the proxy task
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Then the upstream sees its client close within a second (while our event loop still runs)
        try:
            return await upstream.saw("cancelled client closed", within=1.0)
        finally:
            await proxy.aclose()

    assert asyncio.run(disconnect_after_first_event())


def test_unreachable_upstream_is_a_clear_502() -> None:
    proxy = UpstreamProxy(f"http://127.0.0.1:{free_port()}/mcp", 5.0, forward_id_token=False)

    answer = run(proxy, scope())

    assert answer.seconds < 1.0
    assert answer.status == 502
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == {
        "error": "bad_gateway",
        "error_description": "The MCP server behind this gateway is unreachable",
    }


def test_slow_upstream_is_a_504_within_the_timeout(upstream: Upstream) -> None:
    proxy = UpstreamProxy(upstream.url("/slow?seconds=5"), 0.5, forward_id_token=False)

    answer = run(proxy, scope())

    assert answer.seconds < 2.0
    assert answer.status == 504
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == {
        "error": "gateway_timeout",
        "error_description": "The MCP server behind this gateway did not answer in time",
    }


def test_upstream_stalling_mid_stream_just_ends_the_body(upstream: Upstream) -> None:
    # Given an upstream whose events come slower than the proxy waits between them
    proxy = UpstreamProxy(upstream.url("/sse?events=3&delay=2&tag=stalled"), 0.5, forward_id_token=False)

    answer = run(proxy, scope("GET"))

    # Then the client keeps the 200 and the events so far, and the body ends within the timeout
    assert answer.status == 200
    assert answer.body == b"data: 0\n\n"
    assert answer.messages[-1][1] == {"type": "http.response.body", "body": b""}
    assert answer.seconds < 1.5


def test_hop_by_hop_and_cookie_headers_are_not_forwarded(upstream: Upstream) -> None:
    proxy = UpstreamProxy(upstream.url("/mcp"), 5.0, forward_id_token=False)
    body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
    headers = [
        (b"host", b"gateway.example"),
        (b"authorization", f"Bearer {OUR_TOKEN}".encode()),
        (b"cookie", b"sessionid=secret-session"),
        (b"origin", b"https://client.example"),
        (b"connection", b"keep-alive, x-hop"),
        (b"keep-alive", b"timeout=99"),
        (b"te", b"trailers"),
        (b"upgrade", b"websocket"),
        (b"proxy-authorization", b"Basic c2VjcmV0"),
        (b"content-length", b"999"),
        (b"x-hop", b"1"),
        (b"user-agent", b"test-client/1.0"),
    ]

    answer = run(proxy, scope("POST", headers), body)

    # The upstream heard none of the client's connection-level, credential or cookie headers
    got = dict(answer.json()["headers"])
    for name in ("authorization", "cookie", "origin", "keep-alive", "te", "upgrade", "proxy-authorization", "x-hop"):
        assert name not in got, name
    assert got["host"] == upstream.base_url.removeprefix("http://")
    assert got["content-length"] == str(len(body))
    assert got.get("connection") != "keep-alive, x-hop"
    assert got["user-agent"] == "test-client/1.0"
    # And the client hears none of the upstream's hop-by-hop headers or cookies
    for name in (b"set-cookie", b"keep-alive", b"proxy-authenticate", b"connection", b"x-dropped-by-connection"):
        assert name not in answer.header_names, name
    assert b"content-length" not in answer.header_names
    assert answer.headers["mcp-session-id"] == "upstream-session-1"
