"""The /mcp layers one at a time, the bearer header parser, and the OAuth error type in both renderings."""

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from infra import ratelimit
from infra.errors import OAuthError, oauth_error
from infra.outages import RETRY_AFTER_SECONDS
from mcp_gateway.bearer_header import Credentials, credentials
from mcp_gateway.identity import SCOPE_KEY, Identity, identity_of
from mcp_gateway.stack import compose, token_lifetime
from mcp_gateway.stack.authentication import BearerAuthentication
from mcp_gateway.stack.context import RequestContext
from mcp_gateway.stack.nosniff import Nosniff
from mcp_gateway.stack.origin import OriginCheck
from mcp_gateway.stack.rate_limit import RateLimit
from mcp_gateway.stack.request_body import RequestBody
from mcp_gateway.stack.scopes import RequireScopes

Message = dict[str, Any]
ALICE = Identity(
    subject="alice",
    user_id=7,
    client_id="client-1",
    scopes=("mcp",),
    session_id="family-1",
    expires=datetime.now(UTC) + timedelta(hours=1),
)


class App:
    """The innermost app: records the scope and body it got, and answers 200 (or streams until cancelled)."""

    def __init__(self, headers: list[tuple[bytes, bytes]] | None = None, stream: bool = False) -> None:
        self.headers = headers or [(b"content-type", b"application/json")]
        self.stream = stream
        self.scopes: list[dict[str, Any]] = []
        self.received: list[Message] = []
        self.cancelled = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        self.received.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        if not self.stream:
            await send({"type": "http.response.body", "body": b"{}"})
            return
        try:
            while True:
                await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": True})
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def http_scope(method: str = "POST", query: bytes = b"", **headers: str) -> dict[str, Any]:
    raw = [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return {"type": "http", "method": method, "path": "/mcp", "query_string": query, "headers": raw}


def drive(
    app: Callable[[Any, Any, Any], Awaitable[None]],
    scope: dict[str, Any],
    incoming: list[Message] | None = None,
    leave_after: int | None = None,
) -> list[Message]:
    """What `app` sends for `incoming` (default: one empty body); the client leaves after `leave_after` messages."""
    sent: list[Message] = []
    queue = list(incoming or [{"type": "http.request", "body": b""}])
    left = asyncio.Event()

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if leave_after is not None and len(sent) >= leave_after:
            left.set()

    async def run() -> None:
        await asyncio.wait_for(app(scope, receive, send), 5)

    async_to_sync(run)()
    return sent


def start(sent: list[Message]) -> tuple[int, dict[bytes, bytes]]:
    return sent[0]["status"], dict(sent[0]["headers"])


def body(sent: list[Message]) -> dict[str, Any]:
    return json.loads(b"".join(message.get("body", b"") for message in sent[1:]))


# --- the bearer header ---


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        ("Bearer abc.def", Credentials(bearer=True, token="abc.def")),
        ("bearer abc", Credentials(bearer=True, token="abc")),
        ("BEARER abc", Credentials(bearer=True, token="abc")),
        ("Bearer", Credentials(bearer=True, token=None)),
        ("Bearer ", Credentials(bearer=True, token=None)),
        ("Bearer two words", Credentials(bearer=True, token=None)),
        ("Basic YWxpY2U6cGFzcw==", Credentials(bearer=False, token=None)),
        ("BearerX abc", Credentials(bearer=False, token=None)),
        ("", Credentials(bearer=False, token=None)),
        (None, Credentials(bearer=False, token=None)),
    ],
)
def test_the_bearer_header_has_one_token_after_the_scheme_in_any_case(authorization, expected):
    assert credentials(authorization) == expected


# --- the OAuth error type ---


def test_an_oauth_error_renders_the_same_body_and_headers_for_django_and_asgi():
    error = OAuthError("invalid_token", "Nope", 401, {"WWW-Authenticate": "Bearer x"}, retry_after=3)

    response = error.django_response()
    sent = drive(lambda scope, receive, send: error.send(send, [(b"vary", b"Origin")]), http_scope())

    assert response.status_code == 401
    assert response.content == sent[1]["body"] == b'{"error": "invalid_token", "error_description": "Nope"}'
    assert (response["WWW-Authenticate"], response["Retry-After"]) == ("Bearer x", "3")
    status, headers = start(sent)
    assert status == 401
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"content-length"] == str(len(response.content)).encode()
    assert headers[b"www-authenticate"] == b"Bearer x" and headers[b"retry-after"] == b"3"
    assert headers[b"cache-control"] == b"no-store" and headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"vary"] == b"Origin"


def test_an_oauth_error_without_retry_after_sends_none():
    assert "Retry-After" not in oauth_error("invalid_request", "Bad", 400)
    assert b"retry-after" not in start(drive(lambda s, r, send: OAuthError("a", "b").send(send), http_scope()))[1]


# --- one layer at a time ---


def test_the_request_body_layer_gives_the_whole_body_as_one_message():
    app = App()
    parts = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    ]

    drive(RequestBody(app), http_scope(), parts)

    assert app.received == [{"type": "http.request", "body": b"abcd", "more_body": False}]


def test_the_request_body_layer_refuses_a_body_over_its_limit_before_the_app_runs():
    app = App()

    sent = drive(RequestBody(app, max_bytes=3), http_scope(), [{"type": "http.request", "body": b"abcd"}])

    assert start(sent)[0] == 413 and body(sent)["error"] == "invalid_request"
    assert app.scopes == []


def test_a_client_leaving_mid_stream_cancels_the_work_behind_it():
    app = App(stream=True)

    sent = drive(RequestBody(app), http_scope(), leave_after=3)

    assert app.cancelled
    assert sent[-1].get("more_body")  # the stream never ended by itself


def test_a_crash_inside_is_a_500_server_error():
    async def crashing(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    sent = drive(RequestContext(crashing), http_scope())

    assert start(sent)[0] == 500 and body(sent)["error"] == "server_error"


@pytest.mark.parametrize(
    "outage", [OperationalError("no database"), RedisConnectionError("no redis"), RedisTimeoutError("redis hangs")]
)
def test_a_database_or_redis_outage_inside_is_a_503_with_retry_after(outage: Exception):
    async def unreachable(scope: Any, receive: Any, send: Any) -> None:
        raise outage

    sent = drive(RequestContext(unreachable), http_scope())

    status, headers = start(sent)
    assert status == 503 and body(sent)["error"] == "temporarily_unavailable"
    assert headers[b"retry-after"] == str(RETRY_AFTER_SECONDS).encode()


def test_a_crash_after_the_answer_started_adds_nothing_to_it():
    async def crashing_late(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("boom")

    sent = drive(RequestContext(crashing_late), http_scope())

    assert [message["type"] for message in sent] == ["http.response.start"]


def test_a_foreign_origin_never_reaches_the_app():
    app = App()

    sent = drive(OriginCheck(app), http_scope(origin="https://evil.example"))

    assert start(sent)[0] == 403 and body(sent)["error"] == "forbidden"
    assert app.scopes == []


def test_a_listed_origin_gets_cors_headers_on_the_apps_answer(settings):
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, allowed_origins=("https://inspector.example",))

    sent = drive(OriginCheck(App()), http_scope(origin="https://inspector.example"))

    assert start(sent)[1][b"access-control-allow-origin"] == b"https://inspector.example"


class EmptyBucket:
    async def atake(self, key: str) -> ratelimit.Decision:
        return ratelimit.Decision(False, 7)


def test_an_empty_bucket_is_a_429_with_retry_after_and_the_app_never_runs():
    app = App()

    sent = drive(RateLimit(app, "ip", EmptyBucket, lambda scope: "key"), http_scope())

    status, headers = start(sent)
    assert status == 429 and headers[b"retry-after"] == b"7"
    assert body(sent)["error"] == "rate_limit_exceeded"
    assert app.scopes == []


class Verifier:
    """A TokenVerifier that knows one token, and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def verify(self, token: str) -> Identity | None:
        self.asked.append(token)
        return ALICE if token == "good" else None


def test_authentication_puts_the_identity_in_the_scope_and_takes_the_token_out():
    app = App()

    drive(BearerAuthentication(app, Verifier()), http_scope(authorization="Bearer good", accept="*/*"))

    assert identity_of(app.scopes[0]) == ALICE
    assert [name for name, _ in app.scopes[0]["headers"]] == [b"accept"]


@pytest.mark.parametrize(
    ("authorization", "error", "asked"),
    [("Bearer bad", "invalid_token", ["bad"]), ("Bearer a b", "invalid_token", []), ("Basic eDp5", "unauthorized", [])],
)
def test_authentication_refuses_without_a_token_the_verifier_accepts(authorization, error, asked):
    app, verifier = App(), Verifier()

    sent = drive(BearerAuthentication(app, verifier), http_scope(authorization=authorization))

    assert start(sent)[0] == 401 and body(sent)["error"] == error
    assert verifier.asked == asked and app.scopes == []


def test_authentication_refuses_a_token_in_a_form_body_and_leaves_other_bodies_to_the_app():
    form = http_scope(authorization="Bearer good", content_type="application/x-www-form-urlencoded")
    other = App()

    refused = drive(
        BearerAuthentication(App(), Verifier()), form, [{"type": "http.request", "body": b"access_token=x"}]
    )
    drive(BearerAuthentication(other, Verifier()), form, [{"type": "http.request", "body": b"a=b"}])

    assert start(refused)[0] == 400 and body(refused)["error"] == "invalid_request"
    assert other.received[0]["body"] == b"a=b"  # the body the layer looked at still reaches the app


def test_the_scope_check_refuses_a_request_without_an_identity_and_one_missing_a_scope(settings):
    mcp = dataclasses.replace(settings.MUSTER_CONFIG.mcp, required_scopes=("tools:write",))
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, mcp=mcp)

    anonymous = drive(RequireScopes(App()), http_scope())
    lacking = drive(RequireScopes(App()), {**http_scope(), SCOPE_KEY: ALICE})

    assert start(anonymous)[0] == 401
    assert start(lacking)[0] == 403 and body(lacking)["error"] == "insufficient_scope"


def test_nosniff_is_added_to_the_apps_answer_unless_it_set_its_own():
    plain = drive(Nosniff(App()), http_scope())
    own = drive(Nosniff(App(headers=[(b"x-content-type-options", b"custom")])), http_scope())

    assert start(plain)[1][b"x-content-type-options"] == b"nosniff"
    assert [value for name, value in own[0]["headers"] if name == b"x-content-type-options"] == [b"custom"]


def test_layers_compose_outermost_first():
    order: list[str] = []

    def layer(name: str) -> Callable[[Any], Any]:
        def wrap(inner: Any) -> Any:
            async def app(scope: Any, receive: Any, send: Any) -> None:
                order.append(name)
                await inner(scope, receive, send)

            return app

        return wrap

    drive(compose([layer("outer"), layer("inner")], App()), http_scope())

    assert order == ["outer", "inner"]


def test_a_token_in_the_query_string_is_refused_with_the_challenge_of_the_moment(settings):
    mcp = dataclasses.replace(settings.MUSTER_CONFIG.mcp, required_scopes=("tools:write",))
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, mcp=mcp)
    verifier = Verifier()

    sent = drive(BearerAuthentication(App(), verifier), http_scope(query=b"access_token=good"))

    status, headers = start(sent)
    assert status == 400 and body(sent)["error"] == "invalid_request"
    assert b'scope="tools:write"' in headers[b"www-authenticate"]
    assert verifier.asked == []


# --- open streams end with their token ---


class RevokedAfter:
    """A TokenVerifier whose one token is accepted `times` times, then refused (revoked)."""

    def __init__(self, times: int = 1, identity: Identity = ALICE) -> None:
        self.times = times
        self.identity = identity
        self.asked = 0

    async def verify(self, token: str) -> Identity | None:
        self.asked += 1
        return self.identity if self.asked <= self.times else None


EVENT_STREAM = [(b"content-type", b"text/event-stream")]
END_OF_BODY = {"type": "http.response.body", "body": b"", "more_body": False}


@pytest.fixture
def quick_checks(monkeypatch) -> None:
    monkeypatch.setattr(token_lifetime, "CHECK_SECONDS", 0.02)


def test_an_event_stream_ends_with_an_end_of_body_once_its_token_is_revoked(quick_checks):
    app = App(headers=EVENT_STREAM, stream=True)

    sent = drive(BearerAuthentication(app, RevokedAfter()), http_scope(authorization="Bearer good"))

    assert app.cancelled
    assert sent[-1] == END_OF_BODY


def test_an_event_stream_ends_at_its_tokens_expiry(quick_checks):
    app = App(headers=EVENT_STREAM, stream=True)
    expiring = dataclasses.replace(ALICE, expires=datetime.now(UTC) + timedelta(seconds=0.2))

    sent = drive(
        BearerAuthentication(app, RevokedAfter(times=1000, identity=expiring)), http_scope(authorization="Bearer t")
    )

    assert app.cancelled
    assert sent[-1] == END_OF_BODY


def test_an_event_stream_whose_token_stays_valid_goes_on_until_the_client_leaves(quick_checks):
    app = App(headers=EVENT_STREAM, stream=True)
    verifier = RevokedAfter(times=1000)

    sent = drive(RequestBody(BearerAuthentication(app, verifier)), http_scope(authorization="Bearer t"), leave_after=30)

    assert verifier.asked > 2  # checked again while it streamed
    assert sent[-1].get("more_body")  # ended by the client, not by the check


def test_an_answer_that_is_not_a_stream_is_never_cut(quick_checks):
    async def slow_answer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await asyncio.sleep(0.2)
        await send({"type": "http.response.body", "body": b"{}"})

    sent = drive(BearerAuthentication(slow_answer, RevokedAfter()), http_scope(authorization="Bearer good"))

    assert sent[-1] == {"type": "http.response.body", "body": b"{}"}


def test_an_apps_own_timeout_is_not_taken_for_the_end_of_its_token(quick_checks):
    async def timing_out(scope: Any, receive: Any, send: Any) -> None:
        raise TimeoutError("the app's own")

    with pytest.raises(TimeoutError, match="the app's own"):
        drive(BearerAuthentication(timing_out, RevokedAfter()), http_scope(authorization="Bearer good"))


async def _answer_while_shutting_down(method: str) -> list[Message]:
    """An event stream answering `method` that sends 3 events; the server stops after the first."""
    sent: list[Message] = []
    first_event = asyncio.Event()

    async def three_events(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": EVENT_STREAM})
        for number in range(3):
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % number, "more_body": True})
            first_event.set()
            await asyncio.sleep(0.05)
        await send(END_OF_BODY)

    async def record(message: Message) -> None:
        sent.append(message)

    async def still_valid() -> bool:
        return True

    answering = asyncio.ensure_future(
        token_lifetime.until_the_token_ends(
            three_events, http_scope(method=method), None, record, still_valid, datetime.now(UTC) + timedelta(hours=1)
        )
    )
    await first_event.wait()
    token_lifetime.end_listening_streams()
    await asyncio.wait_for(answering, 5)
    return sent


def test_at_shutdown_a_listening_event_stream_ends_with_an_end_of_body():
    sent = asyncio.run(_answer_while_shutting_down("GET"))

    assert [message.get("body") for message in sent[1:]] == [b"data: 0\n\n", b""]
    assert sent[-1] == END_OF_BODY


def test_at_shutdown_an_event_stream_answering_a_request_is_left_to_finish():
    sent = asyncio.run(_answer_while_shutting_down("POST"))

    assert [message.get("body") for message in sent[1:]] == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n", b""]
