"""Upstream sessions: the provider's tokens of one sign-in, carried from the callback to a code to a token family.

After the provider's callback the tokens wait, sealed, in the browser's Django session (`keep_pending`) for at
most ten minutes; the authorization code takes them (`attach_to_grant`), and the code exchange hands them to the
token family it starts (`bind_family`). Our access tokens never outlive the provider's (`capped_seconds`). A
refresh of ours refreshes the provider's token first when it expires within five minutes (`ensure_fresh`), one
refresh per user at a time across every replica; only then is our refresh token consumed.
"""

import base64
import logging
import time
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from oauth2_provider.models import RefreshToken

from infra import audit
from infra.locks import LockTimeout, cache_lock
from oauth_server.models import UpstreamIdentity, UpstreamSession
from oauth_server.upstream import discovery, id_tokens, outbound, sealing
from oauth_server.upstream.provider import UpstreamProvider, configured

log = logging.getLogger("muster.upstream")

PENDING_KEY = "muster_upstream"
PENDING_SECONDS = 600
REFRESH_AHEAD = timedelta(minutes=5)
DEFAULT_UPSTREAM_SECONDS = 3600  # a provider that states no expires_in
LOCK_SECONDS = 25  # muster's per-user refresh lock TTL; the provider call is bounded by outbound's 10 s
LOCK_WAIT_SECONDS = 10.0


class UpstreamUnavailable(Exception):
    """The provider could not refresh now (unreachable, 5xx, busy); the client may retry with the same token."""


class UpstreamSessionEnded(Exception):
    """The provider ended the sign-in (invalid_grant, or expired with no refresh token): the family must go."""


def expiry(token_info: dict[str, Any]) -> datetime:
    seconds = token_info.get("expires_in")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
        seconds = DEFAULT_UPSTREAM_SECONDS
    return timezone.now() + timedelta(seconds=int(seconds))


def _sealed(token_info: dict[str, Any], identity: UpstreamIdentity) -> bytes:
    kept = {name: token_info.get(name) for name in ("id_token", "access_token", "refresh_token")}
    return sealing.seal(kept, identity.sealing_owner)


def keep_pending(request: HttpRequest, identity: UpstreamIdentity, token_info: dict[str, Any]) -> None:
    """After a successful callback: the sealed tokens wait in the browser session for the consent step."""
    request.session[PENDING_KEY] = {
        "identity": identity.pk,
        "user": identity.user_id,
        "sealed": base64.b64encode(_sealed(token_info, identity)).decode(),
        "expires_at": expiry(token_info).timestamp(),
        "until": time.time() + PENDING_SECONDS,
    }


def pending(request: HttpRequest) -> dict[str, Any] | None:
    """The signed-in user's fresh pending upstream tokens, if any."""
    entry = request.session.get(PENDING_KEY)
    if not isinstance(entry, dict) or entry.get("until", 0) < time.time():
        return None
    return entry if entry.get("user") == request.user.pk else None


def needs_sign_in(request: HttpRequest) -> bool:
    """With an upstream provider, every authorization starts from a fresh provider sign-in of this user."""
    return configured() is not None and request.user.is_authenticated and pending(request) is None


def attach_to_grant(grant: Any, entry: dict[str, Any] | None) -> None:
    """The authorization code takes the pending tokens."""
    if not entry:
        return
    UpstreamSession.objects.create(
        identity_id=entry["identity"],
        grant=grant,
        sealed_tokens=base64.b64decode(entry["sealed"]),
        expires_at=datetime.fromtimestamp(entry["expires_at"], tz=timezone.get_current_timezone()),
    )


def stale() -> QuerySet[UpstreamSession]:
    """Provider tokens nothing holds: families with no live refresh token, codes never exchanged (a day on)."""
    live = RefreshToken.objects.filter(token_family=OuterRef("token_family"), revoked__isnull=True)
    unclaimed = Q(token_family=None, grant=None, created__lt=timezone.now() - timedelta(days=1))
    return UpstreamSession.objects.filter((Q(token_family__isnull=False) & ~Exists(live)) | unclaimed)


def for_code(code: str, client: Any) -> UpstreamSession | None:
    """The sign-in behind a code; with `provider: local` upstream sessions play no part (and cost no query)."""
    if configured() is None:
        return None
    sessions = UpstreamSession.objects.select_related("identity")
    return sessions.filter(grant__code=code, grant__application=client).first()


def for_family(family: UUID | str) -> UpstreamSession | None:
    """The sign-in behind a token family; with `provider: local` upstream sessions play no part."""
    if configured() is None:
        return None
    return UpstreamSession.objects.select_related("identity").filter(token_family=family).first()


def bind_family(session: UpstreamSession, family: UUID) -> None:
    session.token_family = family
    session.grant = None
    session.save(update_fields=["token_family", "grant"])


def tokens(session: UpstreamSession) -> dict[str, Any]:
    return sealing.unseal(session.sealed_tokens, session.identity.sealing_owner)


def capped_seconds(session: UpstreamSession | None, seconds: int) -> int:
    """capTokenExpiry: never beyond the provider token's remaining lifetime, and never zero or less."""
    if session is None:
        return seconds
    remaining = int((session.expires_at - timezone.now()).total_seconds())
    return max(1, min(seconds, remaining))


def ensure_fresh(session: UpstreamSession) -> UpstreamSession:
    """Refresh the provider's token first when it expires within five minutes (the no-orphan order)."""
    if session.expires_at - timezone.now() > REFRESH_AHEAD:
        return session
    return refresh(session)


def refresh(session: UpstreamSession, force: bool = False) -> UpstreamSession:
    """Refresh at the provider under the user's lock; a refresh another replica just did is reused."""
    provider, metadata = configured(), discovery.metadata()
    if provider is None or metadata is None:
        raise UpstreamUnavailable("the identity provider is not discovered yet")
    try:
        with cache_lock(f"upstream-refresh:{session.identity.user_id}", LOCK_SECONDS, LOCK_WAIT_SECONDS):
            try:
                session.refresh_from_db()
            except UpstreamSession.DoesNotExist:
                raise UpstreamSessionEnded("the upstream session was removed") from None
            if not force and session.expires_at - timezone.now() > REFRESH_AHEAD:
                return session  # refreshed meanwhile
            return _refresh_at_provider(session, provider, metadata)
    except LockTimeout:
        raise UpstreamUnavailable("another refresh of this user's upstream token is still running") from None


def _refresh_at_provider(
    session: UpstreamSession, provider: UpstreamProvider, metadata: discovery.ProviderMetadata
) -> UpstreamSession:
    held = tokens(session)
    if not held.get("refresh_token"):
        if session.expires_at > timezone.now():
            return session
        raise UpstreamSessionEnded("the provider gave no refresh token and its token expired")
    form = {"grant_type": "refresh_token", "refresh_token": held["refresh_token"]}
    try:
        answer = provider.post(metadata.token_endpoint, form)
        body = answer.json() if answer.body else {}
    except outbound.OutboundError as exc:
        _failed(session, "unreachable")
        raise UpstreamUnavailable(str(exc)) from exc
    error = body.get("error") if isinstance(body, dict) else None
    if answer.status in (400, 401) and error == "invalid_grant":
        _failed(session, "invalid_grant")
        raise UpstreamSessionEnded("the provider refused the refresh token (invalid_grant)")
    if answer.status != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        _failed(session, f"http_{answer.status}")
        raise UpstreamUnavailable(f"the provider answered HTTP {answer.status}")
    if body.get("id_token"):
        try:
            id_tokens.verify(body["id_token"], provider, metadata, nonce=None, subject=session.identity.subject)
        except id_tokens.IdTokenError as exc:
            _failed(session, f"id_token_{exc.reason}")
            raise UpstreamUnavailable(str(exc)) from exc
    merged = {
        "access_token": body["access_token"],
        "refresh_token": body.get("refresh_token") or held.get("refresh_token"),  # kept when not rotated
        "id_token": body.get("id_token") or held.get("id_token"),
    }
    session.sealed_tokens = sealing.seal(merged, session.identity.sealing_owner)
    session.expires_at = expiry(body)
    session.refreshed = timezone.now()
    session.save(update_fields=["sealed_tokens", "expires_at", "refreshed"])
    audit.record("upstream_token_refreshed", user_id=session.identity.user_id, family=str(session.token_family))
    return session


def _failed(session: UpstreamSession, reason: str) -> None:
    audit.record(
        "upstream_refresh_failed",
        "failure",
        user_id=session.identity.user_id,
        family=str(session.token_family),
        reason=reason,
    )
