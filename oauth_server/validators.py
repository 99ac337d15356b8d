"""Our oauthlib request validator: DOT's, plus scope policy, reuse detection, expiry and the upstream sign-in."""

import hashlib
import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import router, transaction
from django.db.models import F
from django.utils import timezone
from oauth2_provider.models import AccessToken, Grant, RefreshToken, revoke_access_token
from oauth2_provider.scopes import get_scopes_backend
from oauth2_provider.settings import oauth2_settings
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749.errors import TemporarilyUnavailableError

from infra import audit, deadlines
from oauth_server import code_reuse
from oauth_server.clients import lifecycle
from oauth_server.dot_compat import HookedValidator
from oauth_server.extensions import refresh_grace
from oauth_server.extensions.pkce import PkceAudit
from oauth_server.extensions.resource_indicators import ResourceAudit
from oauth_server.families import UPSTREAM_ENDED, revoke_family
from oauth_server.upstream import sessions as upstream_sessions


class RetryLater(TemporarilyUnavailableError):
    """A 503 with Retry-After: nothing was spent, the same code or refresh token works on the next try."""

    status_code = 503
    retry_after = 1

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ProviderUnavailable(RetryLater):
    """The provider could not refresh the sign-in now."""

    description = "The identity provider could not refresh the sign-in; retry with the same refresh token"
    retry_after = 5


class DeadlinePassed(RetryLater):
    """The request ran past its deadline (its client has likely given up): abandoned before it changed anything."""

    description = "The request took too long and was abandoned; retry with the same grant"


def _abandon_if_late() -> None:
    if deadlines.passed():
        raise DeadlinePassed()


def _checksum(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _family_alive(family: Any) -> bool:
    """A family still holding a live refresh token: one already revoked is not revoked (nor counted) again."""
    return RefreshToken.objects.filter(token_family=family, revoked__isnull=True).exists()


class MusterValidator(PkceAudit, ResourceAudit, HookedValidator):
    """Replays revoke; users and clients must stay enabled; the upstream sign-in travels with code and tokens."""

    def application_loaded(self, client: Any, request: Request) -> Any:
        """A client an operator disabled is as good as unknown."""
        if client is not None and lifecycle.is_disabled(client):
            request.client = None
            return None
        return client

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        """RFC 6749 §3.3: unknown scopes are dropped rather than refused; none left → the default scopes."""
        available = set(get_scopes_backend().get_available_scopes(application=client, request=request))
        kept = [scope for scope in scopes if scope in available]
        request.scopes = kept or list(self.get_default_scopes(client_id, request))
        return True

    def authorization_code_saved(self, grant: Grant, request: Request) -> None:
        """The code takes the provider's tokens from this sign-in."""
        upstream_sessions.attach_to_grant(grant, getattr(request, "muster_upstream", None))

    def validate_code(
        self, client_id: str, code: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        """A late request changes nothing; a code used twice revokes what its first use issued."""
        _abandon_if_late()
        if super().validate_code(client_id, code, client, request, *args, **kwargs):
            request.upstream_session = upstream_sessions.for_code(code, client)
            return request.user.is_active
        family = code_reuse.family_issued_by(code)
        if family:
            audit.record("code_reuse_detected", "failure", client_id=client_id, family=family)
            revoke_family(family, reason="authorization-code-reuse")
        return False

    def refresh_token_saved(self, refresh_token: RefreshToken, request: Request) -> None:
        """A code's exchange is remembered for reuse detection; the sign-in moves to the family; audited."""
        family = str(refresh_token.token_family)
        if request.grant_type == "authorization_code":
            code_reuse.remember_exchange(request.code, family)
            if (session := getattr(request, "upstream_session", None)) is not None:
                upstream_sessions.bind_family(session, refresh_token.token_family)
        lifecycle.touch(request.client)
        event = "token_issued" if request.grant_type == "authorization_code" else "token_refreshed"
        audit.record(event, user_id=request.user.pk, client_id=request.client.client_id, family=family)

    def validate_refresh_token(
        self, refresh_token: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        """A rotated token presented again revokes its family (unless this request is late: a duplicate whose
        first copy already rotated must not); a token lives `sessionDuration` from its issue."""
        _abandon_if_late()
        token = (
            RefreshToken.objects.filter(token_checksum=_checksum(refresh_token))
            .select_related("user")
            .order_by(F("revoked").desc(nulls_first=True))
            .first()
        )
        if token is None:
            return False
        if token.revoked is not None:
            if token.token_family:
                audit.record(
                    "refresh_token_reuse_detected",
                    "failure",
                    user_id=token.user_id,
                    client_id=getattr(client, "client_id", None),
                    family=str(token.token_family),
                )
                if _family_alive(token.token_family):
                    revoke_family(token.token_family, reason="refresh-token-reuse")
            return False
        if token.application_id != getattr(client, "pk", None):
            audit.record("client_binding_mismatch", "failure", user_id=token.user_id, client_id=client.client_id)
            return False
        lifetime = timedelta(seconds=oauth2_settings.REFRESH_TOKEN_EXPIRE_SECONDS)
        if token.created + lifetime <= timezone.now() or not token.user.is_active:
            return False
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        return self._upstream_refreshed_first(token, request)

    def _upstream_refreshed_first(self, token: RefreshToken, request: Request) -> bool:
        """The provider's token is refreshed before ours is consumed, so a provider outage never burns it."""
        session = upstream_sessions.for_family(token.token_family)
        if session is None:
            request.upstream_session = None
            return True
        try:
            request.upstream_session = upstream_sessions.ensure_fresh(session)
        except upstream_sessions.UpstreamUnavailable:
            raise ProviderUnavailable() from None
        except upstream_sessions.UpstreamSessionEnded:
            revoke_family(token.token_family, reason=UPSTREAM_ENDED)
            return False
        return True

    def save_bearer_token(self, token: dict[str, Any], request: Request, *args: Any, **kwargs: Any) -> Any:
        """`exposeUpstreamIdToken`: the id_token rides along; tokens commit with their grace copy, and in time."""
        with transaction.atomic(using=router.db_for_write(RefreshToken)):
            saved = super().save_bearer_token(token, request, *args, **kwargs)
            session = getattr(request, "upstream_session", None)
            exposed = session is not None and settings.MUSTER_CONFIG.expose_upstream_id_token
            if exposed and (id_token := upstream_sessions.tokens(session).get("id_token")):
                token["id_token"] = id_token
            if request.grant_type == "refresh_token":  # the body oauthlib answers with, byte for byte
                refresh_grace.remember(request.refresh_token, request.client.client_id, json.dumps(token).encode())
            _abandon_if_late()  # rolls the rotation back: the client gave up on it, its grant must stay usable
        return saved

    def revoke_token(
        self, token: str, token_type_hint: str | None, request: Request, *args: Any, **kwargs: Any
    ) -> None:
        """RFC 7009, scoped to the calling client; a refresh token takes its whole family with it."""
        if request.client is None:
            return
        lookup = {"token_checksum": _checksum(token), "application_id": request.client.pk}
        refresh = RefreshToken.objects.filter(**lookup, revoked__isnull=True).exclude(token_family=None).first()
        if refresh is not None:
            audit.record("token_revoked", user_id=refresh.user_id, client_id=request.client.client_id, kind="refresh")
            revoke_family(refresh.token_family, reason="revocation-endpoint")
            return
        access = AccessToken.objects.filter(**lookup).first()
        if access is not None:
            audit.record("token_revoked", user_id=access.user_id, client_id=request.client.client_id, kind="access")
            revoke_access_token(access)
