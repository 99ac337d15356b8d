"""Refresh grace (with RFC 9700 §4.14.2 rotation): a rotated refresh token presented again soon gets the same pair.

Real MCP clients retry and race their refreshes; without this, the retry looks like theft and the
family dies. The rotated response is kept in the shared cache for the grace period, keyed by the old
token's SHA-256 and encrypted (AES-256-GCM) under a key derived from the old token itself, so neither
the database nor the cache ever holds a usable token in plaintext.
"""

import hashlib
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from oauth2_provider.models import Application, RefreshToken

from oauth_server.clients.authentication import ClaimedClient, claimed_client_id


def _cache_key(old_token: str) -> str:
    return "refresh-grace:" + hashlib.sha256(old_token.encode()).hexdigest()


def _cipher(old_token: str) -> AESGCM:
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"muster refresh grace v1")
    return AESGCM(kdf.derive(old_token.encode()))


def remember(old_token: str, client_id: str, response_body: bytes, seconds: int) -> None:
    """Keep the rotated response for `seconds`, readable only by whoever holds the old token."""
    if seconds <= 0:
        return
    nonce = os.urandom(12)
    sealed = _cipher(old_token).encrypt(nonce, response_body, client_id.encode())
    cache.set(_cache_key(old_token), {"client_id": client_id, "sealed": nonce + sealed}, timeout=seconds)


def replay(old_token: str, client_id: str) -> bytes | None:
    """The kept response, if this client rotated this token within the grace and the new pair still lives."""
    entry = cache.get(_cache_key(old_token))
    if not entry or entry["client_id"] != client_id:
        return None
    sealed: bytes = entry["sealed"]
    try:
        body = _cipher(old_token).decrypt(sealed[:12], sealed[12:], client_id.encode())
    except InvalidTag:  # altered in the cache: treat as never kept
        return None
    new_refresh = json.loads(body)["refresh_token"]
    checksum = hashlib.sha256(new_refresh.encode()).hexdigest()
    if not RefreshToken.objects.filter(token_checksum=checksum, revoked__isnull=True).exists():
        return None
    return body


class RefreshGrace(ClaimedClient):
    """For DOT's token view, with the refresh token's lock held: replay within the grace, else rotate and keep."""

    def refresh_with_grace(self, request: HttpRequest, old_token: str) -> HttpResponse:
        client_id = claimed_client_id(request) or ""
        if self.may_replay(request) and (body := replay(old_token, client_id)):
            return HttpResponse(
                body, content_type="application/json", headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
            )
        response = self.authorization_flow_token_response(request)  # type: ignore[attr-defined]
        if response.status_code == 200:
            grace = int(settings.MUSTER_CONFIG.refresh_grace_period.total_seconds())
            remember(old_token, client_id, response.content, grace)
        return response

    def may_replay(self, request: HttpRequest) -> bool:
        """Public clients prove nothing beyond their id; confidential ones must authenticate first."""
        client_type = self.claimed_client_type(request)
        return client_type == Application.CLIENT_PUBLIC or self.confidential_client_authenticated(request)
