"""mozilla-django-oidc's backend, corrected: verified id_token, PKCE, timeouts, users by (issuer, subject)."""

import hashlib
import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from infra import audit
from oauth_server.models import UpstreamIdentity
from oauth_server.upstream import discovery, id_tokens, outbound, sessions
from oauth_server.upstream.provider import MAX_GROUPS, UpstreamProvider, configured
from oauth_server.upstream.settings import provider_setting

log = logging.getLogger("muster.upstream")
FAILURE_ATTRIBUTE = "muster_upstream_failure"


class SignInFailed(Exception):
    """The provider's answer cannot sign anyone in; `reason` is a short word for the audit log."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UpstreamBackend(OIDCAuthenticationBackend):
    """Signs a user in from the provider's callback; keeps the provider's tokens pending for the consent step."""

    get_settings = staticmethod(provider_setting)

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> Any:
        """None (and the reason on the request) on any failure: the callback view shows it, nothing is stored."""
        if request is None or "code" not in request.GET or configured() is None:
            return None
        self.token_info: dict[str, Any] = {}
        try:
            user = super().authenticate(request, **kwargs)
            if user is not None and user.is_active:
                sessions.keep_pending(request, self.identity, self.token_info)
        except SignInFailed as exc:
            return self._failed(request, exc.reason, str(exc))
        except id_tokens.IdTokenError as exc:
            return self._failed(request, exc.reason, str(exc))
        except outbound.OutboundError as exc:
            return self._failed(request, "provider_unreachable", f"the identity provider could not be reached: {exc}")
        if user is not None:
            audit.record("upstream_sign_in", user_id=user.pk, provider=configured().kind)  # type: ignore[union-attr]
        return user

    @staticmethod
    def _failed(request: HttpRequest, reason: str, message: str) -> None:
        setattr(request, FAILURE_ATTRIBUTE, (reason, message))
        audit.record("upstream_sign_in_failed", "failure", reason=reason)
        log.warning("upstream sign-in failed: %s", message)
        return None

    def _provider(self) -> tuple[UpstreamProvider, discovery.ProviderMetadata]:
        provider, metadata = configured(), discovery.metadata()
        if provider is None or metadata is None:
            raise SignInFailed("discovery_pending", "the identity provider is not discovered yet")
        return provider, metadata

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The code exchange (with the PKCE verifier), authenticated with client_secret_basic."""
        provider, metadata = self._provider()
        form = {key: str(value) for key, value in payload.items() if key not in ("client_id", "client_secret")}
        form["redirect_uri"] = provider.callback_url
        answer = provider.post(metadata.token_endpoint, form)
        body = answer.json()
        if answer.status != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            error = body.get("error") if isinstance(body, dict) else None
            raise SignInFailed(
                "exchange_failed", f"the provider refused the code exchange (HTTP {answer.status}, {error})"
            )
        self.token_info = body
        return body

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        provider, metadata = self._provider()
        return id_tokens.verify(token, provider, metadata, nonce=kwargs.get("nonce"))

    def store_tokens(self, access_token: str, id_token: str) -> None:
        """The tokens are kept sealed by `sessions.keep_pending`, never in plain session fields."""

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        """id_token claims, completed by the userinfo endpoint when there is one (same subject required)."""
        provider, metadata = self._provider()
        if not metadata.userinfo_endpoint:
            return payload
        answer = outbound.request(
            "GET",
            metadata.userinfo_endpoint,
            allow_private=provider.allow_private,
            headers={"Authorization": f"Bearer {access_token}"},
        )
        info = answer.json() if answer.status == 200 else None
        if not isinstance(info, dict):
            raise SignInFailed("userinfo_failed", f"the userinfo endpoint answered HTTP {answer.status}")
        if info.get("sub") != payload["sub"]:
            raise SignInFailed("userinfo_subject", "userinfo names another subject than the id_token")
        return {**payload, **info}

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        """Users are matched by (issuer, subject) only; an email is kept only when the provider verified it."""
        claims = self.get_userinfo(access_token, id_token, payload)
        # Only after every provider call: no transaction is held open over the network.
        try:
            with transaction.atomic():
                return self._saved_identity(payload, claims).user
        except IntegrityError:  # a concurrent first sign-in of the same subject created it: use that one
            with transaction.atomic():
                return self._saved_identity(payload, claims).user

    def _saved_identity(self, payload: dict[str, Any], claims: dict[str, Any]) -> UpstreamIdentity:
        issuer, subject = str(payload["iss"]), str(payload["sub"])
        identity = UpstreamIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
        if identity is None:
            identity = UpstreamIdentity(issuer=issuer, subject=subject, user=self._new_user(issuer, subject))
        verified = claims.get("email_verified") is True or str(claims.get("email_verified")).lower() == "true"
        email = claims.get("email") if verified and isinstance(claims.get("email"), str) else ""
        groups = claims.get("groups")
        identity.name = str(claims.get("name") or "")[:255]
        identity.groups = [str(group) for group in groups[:MAX_GROUPS]] if isinstance(groups, list) else []
        identity.save()
        if identity.user.email != email[:254]:  # the user's email is the provider's, once it verified it
            identity.user.email = email[:254]
            identity.user.save(update_fields=["email"])
        self.identity = identity
        return identity

    def _new_user(self, issuer: str, subject: str) -> Any:
        """Username: the subject when it is free, else the subject with a short hash of (issuer, subject)."""
        users = get_user_model()
        username = subject[:150]
        if users.objects.filter(username=username).exists():
            suffix = hashlib.sha256(f"{issuer}|{subject}".encode()).hexdigest()[:12]
            username = f"{subject[:137]}-{suffix}"
        return users.objects.create_user(username)
