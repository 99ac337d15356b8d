"""The /mcp gateway in process: who gets through, what every refusal looks like, and what the app receives."""

import asyncio
import dataclasses
import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, RefreshToken

from infra import shared_cache
from mcp_gateway import bearer, sessions, targets
from mcp_gateway.signals import authenticated
from mcp_gateway.stack import mcp_endpoint
from oauth_server.families import USER_SIGN_OUT, revoke_families_of
from tests.support.flow import sign_in
from tests.support.tokens import checksum
from tests.support.waiting import eventually_async

PRM = 'resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"'
INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}).encode()


@pytest.fixture(autouse=True)
def identity_app(settings):
    """Route /mcp to a small app that shows what it received, and start every test with empty caches."""
    mcp = dataclasses.replace(settings.MUSTER_CONFIG.mcp, app="tests.servers.identity_app:app")
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, mcp=mcp)
    targets.target.cache_clear()
    bearer._local.clear()
    shared_cache._local.clear()
    sessions._owners.clear()
    yield
    targets.target.cache_clear()
    bearer._local.clear()
    shared_cache._local.clear()
    sessions._owners.clear()


async def exchange(method: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> dict:
    """Drive the /mcp stack as an ASGI server would: the request, then the whole answer."""
    target_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "path": target_path,
        "query_string": query.encode(),
        "headers": headers,
    }
    communicator = ApplicationCommunicator(mcp_endpoint(), scope)
    await communicator.send_input({"type": "http.request", "body": body})
    start = await communicator.receive_output(5)
    chunks = []
    while True:
        message = await communicator.receive_output(5)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(5)
    headers_out = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return {"status": start["status"], "headers": headers_out, "body": b"".join(chunks)}


def call(method: str = "POST", body: bytes = INITIALIZE, path: str = "/mcp", **headers: str):
    """One request to /mcp; header names use underscores (`mcp_session_id`)."""
    raw = [(name.replace("_", "-").lower().encode(), value.encode()) for name, value in headers.items()]
    if not any(name == b"content-type" for name, _ in raw):
        raw.append((b"content-type", b"application/json"))
    return async_to_sync(exchange)(method, path, body, raw)


def bearer_for(tokens: dict[str, str]) -> str:
    return f"Bearer {tokens['access_token']}"


@pytest.fixture
def tokens(user, public_client) -> dict[str, str]:
    return sign_in(user, public_client.client_id)


@pytest.mark.django_db(transaction=True)
def test_a_valid_token_reaches_the_app_with_the_callers_identity(tokens, user, public_client):
    response = call(authorization=bearer_for(tokens))

    assert response["status"] == 200
    seen = json.loads(response["body"])
    assert seen["identity"]["subject"] == "alice"
    assert seen["identity"]["user_id"] == user.pk
    assert seen["identity"]["client_id"] == public_client.client_id
    assert seen["identity"]["scopes"] == ["mcp"]
    family = RefreshToken.objects.get(token_checksum=checksum(tokens["refresh_token"])).token_family
    assert seen["identity"]["session_id"] == str(family)
    assert seen["body"] == INITIALIZE.decode()


@pytest.mark.django_db(transaction=True)
def test_our_bearer_token_is_not_passed_to_the_app(tokens):
    seen = json.loads(call(authorization=bearer_for(tokens))["body"])

    assert seen["authorization"] == ""
    assert seen["identity"]["subject"] == "alice"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_scheme_is_case_insensitive(tokens, scheme):
    assert call(authorization=f"{scheme} {tokens['access_token']}")["status"] == 200


@pytest.mark.django_db(transaction=True)
def test_no_token_gets_a_401_challenge_without_an_error():
    response = call()

    assert response["status"] == 401
    assert response["headers"]["www-authenticate"] == f"Bearer {PRM}"
    assert "invalid_token" not in response["headers"]["www-authenticate"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "Bearer two words", "Bearer not-a-real-token", "Basic YWxpY2U6cGFzcw=="],
)
def test_a_malformed_or_unknown_token_gets_invalid_token(authorization):
    response = call(authorization=authorization)

    assert response["status"] == 401
    if authorization.startswith("Bearer"):
        assert 'error="invalid_token"' in response["headers"]["www-authenticate"]
        assert json.loads(response["body"]) == {
            "error": "invalid_token",
            "error_description": "The access token is invalid, expired or revoked",
        }
    assert PRM in response["headers"]["www-authenticate"]


@pytest.mark.django_db(transaction=True)
def test_a_token_in_the_query_string_is_refused(tokens):
    response = call(path=f"/mcp?access_token={tokens['access_token']}")

    assert response["status"] == 400
    assert json.loads(response["body"])["error"] == "invalid_request"


@pytest.mark.django_db(transaction=True)
def test_a_token_in_a_form_body_is_refused(tokens):
    body = f"access_token={tokens['access_token']}".encode()

    assert call(body=body, content_type="application/x-www-form-urlencoded")["status"] == 400


@pytest.mark.django_db(transaction=True)
def test_an_expired_token_is_refused_with_the_same_description(tokens):
    AccessToken.objects.update(expires=timezone.now() - timedelta(seconds=1))

    response = call(authorization=bearer_for(tokens))

    assert response["status"] == 401
    assert json.loads(response["body"])["error_description"] == "The access token is invalid, expired or revoked"


@pytest.mark.django_db(transaction=True)
def test_a_revoked_token_is_refused_at_once(user, public_client):
    tokens = sign_in(user, public_client.client_id)
    assert call(authorization=bearer_for(tokens))["status"] == 200

    RefreshToken.revoke_family(RefreshToken.objects.get().token_family)

    assert call(authorization=bearer_for(tokens))["status"] == 401


@pytest.mark.django_db(transaction=True)
def test_a_deactivated_users_token_is_refused_at_once(user, public_client):
    tokens = sign_in(user, public_client.client_id)
    assert call(authorization=bearer_for(tokens))["status"] == 200

    user.is_active = False
    user.save()

    assert call(authorization=bearer_for(tokens))["status"] == 401


@pytest.mark.django_db(transaction=True)
def test_a_token_for_another_resource_is_refused(tokens):
    AccessToken.objects.update(resource=["https://other.example/mcp"])

    assert call(authorization=bearer_for(tokens))["status"] == 401


@pytest.mark.django_db(transaction=True)
def test_a_token_without_a_resource_is_refused(tokens):
    AccessToken.objects.update(resource=[])

    assert call(authorization=bearer_for(tokens))["status"] == 401


@pytest.mark.django_db(transaction=True)
def test_a_registration_access_token_is_refused(public_client):
    # DCR registration tokens are plain access tokens with no user, no refresh token and no resource.
    token = AccessToken(application=public_client, scope="oauth2_provider:registration mcp")
    token.expires = timezone.now() + timedelta(days=1)
    token.token = "registration-token-" + "x" * 30
    token.save()

    assert call(authorization="Bearer " + "registration-token-" + "x" * 30)["status"] == 401


@pytest.mark.django_db(transaction=True)
def test_a_token_without_a_user_is_refused(tokens):
    AccessToken.objects.update(user=None)

    assert call(authorization=bearer_for(tokens))["status"] == 401


@pytest.mark.django_db(transaction=True)
def test_a_token_missing_a_required_scope_gets_403_insufficient_scope(tokens, settings):
    mcp = dataclasses.replace(settings.MUSTER_CONFIG.mcp, required_scopes=("tools:write",))
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, mcp=mcp)

    response = call(authorization=bearer_for(tokens))

    assert response["status"] == 403
    challenge = response["headers"]["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="tools:write"' in challenge and PRM in challenge


@pytest.mark.django_db(transaction=True)
def test_required_scopes_are_named_in_every_challenge(settings):
    mcp = dataclasses.replace(settings.MUSTER_CONFIG.mcp, required_scopes=("mcp",))
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, mcp=mcp)

    assert 'scope="mcp"' in call()["headers"]["www-authenticate"]


@pytest.mark.django_db(transaction=True)
def test_a_session_is_bound_to_the_user_who_opened_it(user, bob, public_client):
    alice_tokens = sign_in(user, public_client.client_id)
    bob_tokens = sign_in(bob, public_client.client_id)
    opened = call(authorization=bearer_for(alice_tokens))
    session_id = opened["headers"]["mcp-session-id"]

    assert call(authorization=bearer_for(alice_tokens), mcp_session_id=session_id)["status"] == 200
    refused = call(authorization=bearer_for(bob_tokens), mcp_session_id=session_id)
    assert refused["status"] == 404
    assert json.loads(refused["body"])["error"] == "session_not_found"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("origin", ["https://evil.example", "http://127.0.0.1:9999", "null"])
def test_a_foreign_origin_is_refused_with_403(tokens, origin):
    response = call(authorization=bearer_for(tokens), origin=origin)

    assert response["status"] == 403


@pytest.mark.django_db(transaction=True)
def test_the_sites_own_origin_is_allowed(tokens):
    assert call(authorization=bearer_for(tokens), origin="http://127.0.0.1:8000")["status"] == 200


@pytest.mark.django_db(transaction=True)
def test_a_listed_origin_gets_cors_headers(tokens, settings):
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, allowed_origins=("https://inspector.example",))

    response = call(authorization=bearer_for(tokens), origin="https://inspector.example")

    assert response["status"] == 200
    assert response["headers"]["access-control-allow-origin"] == "https://inspector.example"
    assert "Mcp-Session-Id" in response["headers"]["access-control-expose-headers"]


@pytest.mark.django_db(transaction=True)
def test_preflight_is_answered_from_the_allowed_origins(settings):
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, allowed_origins=("https://inspector.example",))

    allowed = call("OPTIONS", b"", origin="https://inspector.example")
    refused = call("OPTIONS", b"", origin="https://evil.example")

    assert allowed["status"] == 204
    assert allowed["headers"]["access-control-allow-origin"] == "https://inspector.example"
    assert "Authorization" in allowed["headers"]["access-control-allow-headers"]
    assert refused["status"] == 403
    assert "access-control-allow-origin" not in refused["headers"]


@pytest.mark.django_db(transaction=True)
def test_an_oversized_body_is_refused_with_413(tokens):
    response = call(body=b"x" * ((1 << 20) + 1), authorization=bearer_for(tokens))

    assert response["status"] == 413


@pytest.mark.django_db(transaction=True)
def test_every_authenticated_request_sends_the_authenticated_signal(tokens):
    seen = []

    def receiver(sender, identity, **kwargs):
        seen.append(identity)

    authenticated.connect(receiver)
    try:
        call(authorization=bearer_for(tokens))
        call()
    finally:
        authenticated.disconnect(receiver)

    assert [identity.subject for identity in seen] == ["alice"]


@pytest.mark.django_db(transaction=True)
def test_error_answers_carry_the_security_headers():
    headers = call()["headers"]

    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["content-type"] == "application/json"


@pytest.mark.django_db(transaction=True)
def test_other_applications_tokens_work_too(user):
    other = Application.objects.create(
        name="Other",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="http://127.0.0.1/callback",
    )
    tokens = sign_in(user, other.client_id)

    assert json.loads(call(authorization=bearer_for(tokens))["body"])["identity"]["client_id"] == other.client_id


@pytest.mark.django_db(transaction=True)
def test_a_client_that_disconnects_mid_stream_stops_the_work_behind_it(tokens):
    from tests.servers import identity_app

    identity_app.cancelled_streams.clear()

    async def open_then_leave() -> list[bytes]:
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "path": "/mcp",
            "query_string": b"",
            "headers": [(b"authorization", bearer_for(tokens).encode()), (b"accept", b"text/event-stream")],
        }
        communicator = ApplicationCommunicator(mcp_endpoint(), scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(5)
        assert start["status"] == 200
        events = [(await communicator.receive_output(5))["body"] for _ in range(2)]
        await communicator.send_input({"type": "http.disconnect"})
        await communicator.wait(1)
        return events

    events = async_to_sync(open_then_leave)()

    assert events == [b"data: 0\n\n", b"data: 1\n\n"]
    assert len(identity_app.cancelled_streams) == 1


def test_an_mcp_app_that_cannot_be_imported_is_reported_by_the_checks(settings):
    from mcp_gateway.checks import mcp_app_importable

    mcp = dataclasses.replace(settings.MUSTER_CONFIG.mcp, app="no_such_module:app")
    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, mcp=mcp)

    errors = mcp_app_importable(None)

    assert [error.id for error in errors] == ["muster.E002"]
    assert "mcp.app" in errors[0].msg


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_revocation_tombstone_in_redis_wins_over_a_concurrent_lookup(shared_redis, user, public_client):
    tokens = sign_in(user, public_client.client_id)
    assert call(authorization=bearer_for(tokens))["status"] == 200

    # A revocation lands while another worker is between its database read and its cache write:
    bearer.invalidate([checksum(tokens["access_token"])])
    bearer._local.clear()

    # the tombstone is what every worker now reads, although the database row was not touched here.
    assert AccessToken.objects.filter(token_checksum=checksum(tokens["access_token"])).exists()
    assert call(authorization=bearer_for(tokens))["status"] == 401


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_with_redis_a_revoked_token_is_refused_and_sessions_stay_bound(shared_redis, user, bob, public_client):
    alice_tokens = sign_in(user, public_client.client_id)
    bob_tokens = sign_in(bob, public_client.client_id)
    session_id = call(authorization=bearer_for(alice_tokens))["headers"]["mcp-session-id"]
    assert call(authorization=bearer_for(bob_tokens), mcp_session_id=session_id)["status"] == 404

    RefreshToken.revoke_family(RefreshToken.objects.filter(user=user).first().token_family)

    assert call(authorization=bearer_for(alice_tokens))["status"] == 401


@pytest.mark.django_db(transaction=True)
def test_after_a_complete_answer_the_app_may_finish_its_clean_up(tokens):
    from tests.servers import identity_app

    identity_app.finished_cleanups.clear()

    async def answer_then_leave() -> None:
        await exchange(
            "POST",
            "/mcp",
            INITIALIZE,
            [(b"authorization", bearer_for(tokens).encode()), (b"x-test-cleanup", b"1")],
        )
        # the client is gone; the app's clean-up still runs to its end
        assert await eventually_async(lambda: bool(identity_app.finished_cleanups))

    async_to_sync(answer_then_leave)()

    assert identity_app.finished_cleanups == ["POST"]


@pytest.mark.django_db(transaction=True)
def test_the_apps_answers_carry_nosniff_too(tokens):
    assert call(authorization=bearer_for(tokens))["headers"]["x-content-type-options"] == "nosniff"


@pytest.fixture
def lookups(monkeypatch) -> list[str]:
    """The checksums of the tokens looked up past the in-process cache, one entry per lookup."""
    seen: list[str] = []
    look_up = bearer._shared_or_database

    async def counted(token_checksum: str):
        seen.append(token_checksum)
        return await look_up(token_checksum)

    monkeypatch.setattr(bearer, "_shared_or_database", counted)
    return seen


@pytest.mark.django_db(transaction=True)
def test_requests_that_miss_the_cache_together_share_one_lookup(tokens, lookups):
    async def ten_at_once():
        return await asyncio.gather(*(bearer.access_tokens.verify(tokens["access_token"]) for _ in range(10)))

    identities = async_to_sync(ten_at_once)()

    assert len(lookups) == 1
    assert {identity.subject for identity in identities} == {"alice"}


@pytest.mark.django_db(transaction=True)
def test_a_lookup_begun_before_a_revocation_is_not_shared_after_it(tokens, lookups):
    family = RefreshToken.objects.get().token_family

    async def revoked_while_looking_up():
        first = asyncio.ensure_future(bearer.access_tokens.verify(tokens["access_token"]))
        await asyncio.sleep(0)  # the first lookup has begun
        await sync_to_async(RefreshToken.revoke_family)(family)
        return await asyncio.gather(first, bearer.access_tokens.verify(tokens["access_token"]))

    _, after = async_to_sync(revoked_while_looking_up)()

    assert after is None
    assert len(lookups) == 2


async def stream_until_it_ends(authorization: str, while_open: Callable[[], object]) -> list[dict]:
    """Open a GET /mcp event stream, run `while_open` (in a thread) once it streams, and read it to its end
    (each message within 10 s)."""
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": "/mcp",
        "query_string": b"",
        "headers": [(b"authorization", authorization.encode()), (b"accept", b"text/event-stream")],
    }
    communicator = ApplicationCommunicator(mcp_endpoint(), scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    assert (await communicator.receive_output(10))["status"] == 200
    messages = [await communicator.receive_output(10)]
    await sync_to_async(while_open)()
    while messages[-1].get("more_body"):
        messages.append(await communicator.receive_output(10))
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(5)
    return messages


@pytest.mark.django_db(transaction=True)
def test_an_open_stream_ends_soon_after_its_token_is_revoked(tokens):
    from tests.servers import identity_app

    identity_app.cancelled_streams.clear()
    family = RefreshToken.objects.get().token_family

    messages = async_to_sync(stream_until_it_ends)(bearer_for(tokens), lambda: RefreshToken.revoke_family(family))

    assert messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert len(identity_app.cancelled_streams) == 1


@pytest.mark.django_db(transaction=True)
def test_signing_out_everywhere_ends_the_users_open_streams(tokens, user):
    def sign_out() -> None:
        revoke_families_of(USER_SIGN_OUT, user_id=user.pk)

    messages = async_to_sync(stream_until_it_ends)(bearer_for(tokens), sign_out)

    assert messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


@pytest.mark.django_db(transaction=True)
def test_an_open_stream_ends_at_its_tokens_expiry(tokens):
    AccessToken.objects.update(expires=timezone.now() + timedelta(seconds=1))

    messages = async_to_sync(stream_until_it_ends)(bearer_for(tokens), lambda: None)

    assert messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert AccessToken.objects.get().expires <= timezone.now()
