"""Refresh grace (with RFC 9700 §4.14.2 rotation): a rotated refresh token presented again soon gets the same pair.

Real MCP clients retry and race their refreshes; without this, the retry looks like theft and the
family dies. The rotated response is kept in the database, written in the same transaction as the
rotation (so a rotation that committed always has its copy, whatever Redis does), keyed by the old
token's SHA-256 and encrypted (AES-256-GCM) under a key derived from the old token itself, so the
database never holds a usable token in plaintext. Expired copies are pruned as new ones are written.
"""

import hashlib
import json
import os
from datetime import timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from oauth2_provider.models import Application, RefreshToken

from oauth_server.clients.authentication import ClaimedClient, claimed_client_id
from oauth_server.models import RefreshGraceCopy


def _checksum(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _cipher(old_token: str) -> AESGCM:
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"muster refresh grace v1")
    return AESGCM(kdf.derive(old_token.encode()))


def remember(old_token: str, client_id: str, response_body: bytes) -> None:
    """Keep the rotated response for the grace period, readable only by whoever holds the old token.

    Call inside the rotation's transaction: the copy commits, or rolls back, with the new pair.
    """
    grace = settings.MUSTER_CONFIG.refresh_grace_period
    if grace <= timedelta(0):
        return
    now = timezone.now()
    RefreshGraceCopy.objects.filter(expires__lte=now).delete()
    nonce = os.urandom(12)
    sealed = _cipher(old_token).encrypt(nonce, response_body, client_id.encode())
    RefreshGraceCopy.objects.create(
        old_token_checksum=_checksum(old_token), client_id=client_id, sealed=nonce + sealed, expires=now + grace
    )


def replay(old_token: str, client_id: str) -> bytes | None:
    """The kept response, if this client rotated this token within the grace and the new pair still lives."""
    copy = RefreshGraceCopy.objects.filter(
        old_token_checksum=_checksum(old_token), client_id=client_id, expires__gt=timezone.now()
    ).first()
    if copy is None:
        return None
    sealed = bytes(copy.sealed)
    try:
        body = _cipher(old_token).decrypt(sealed[:12], sealed[12:], client_id.encode())
    except InvalidTag:  # altered in the database: treat as never kept
        return None
    new_refresh = json.loads(body)["refresh_token"]
    if not RefreshToken.objects.filter(token_checksum=_checksum(new_refresh), revoked__isnull=True).exists():
        return None
    return body


class RefreshGrace(ClaimedClient):
    """For DOT's token view, with the refresh token's lock held: replay within the grace, else rotate."""

    def refresh_with_grace(self, request: HttpRequest, old_token: str) -> HttpResponse:
        client_id = claimed_client_id(request) or ""
        if self.may_replay(request) and (body := replay(old_token, client_id)):
            return HttpResponse(
                body, content_type="application/json", headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
            )
        return self.authorization_flow_token_response(request)  # type: ignore[attr-defined]

    def may_replay(self, request: HttpRequest) -> bool:
        """Public clients prove nothing beyond their id; confidential ones must authenticate first."""
        client_type = self.claimed_client_type(request)
        return client_type == Application.CLIENT_PUBLIC or self.confidential_client_authenticated(request)
