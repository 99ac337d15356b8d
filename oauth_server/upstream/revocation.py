"""A sign-in ended here ends at the provider too: its refresh token is revoked there (RFC 7009), in the background."""

import logging
import threading
from collections.abc import Iterable

from django.db import transaction

from infra import audit
from oauth_server.models import UpstreamSession
from oauth_server.upstream import discovery, outbound, sealing
from oauth_server.upstream.provider import UpstreamProvider, configured

log = logging.getLogger("muster.upstream")


def revoke_at_provider(ended: Iterable[UpstreamSession]) -> None:
    """After the commit, ask the provider to revoke each ended sign-in's token; best effort, never blocking."""
    provider, metadata = configured(), discovery.metadata()
    if provider is None or metadata is None or not metadata.revocation_endpoint:
        return
    tokens = []
    for session in ended:
        try:
            held = sealing.unseal(session.sealed_tokens, session.identity.sealing_owner)
        except sealing.SealError:
            continue
        if held.get("refresh_token"):
            tokens.append((held["refresh_token"], "refresh_token"))
        elif held.get("access_token"):
            tokens.append((held["access_token"], "access_token"))
    if tokens:
        endpoint = metadata.revocation_endpoint
        transaction.on_commit(
            lambda: threading.Thread(
                target=_revoke, args=(provider, endpoint, tokens), name="upstream-revocation", daemon=True
            ).start()
        )


def _revoke(provider: UpstreamProvider, endpoint: str, tokens: list[tuple[str, str]]) -> None:
    for token, hint in tokens:
        try:
            answer = provider.post(endpoint, {"token": token, "token_type_hint": hint})
        except outbound.OutboundError as exc:
            log.warning("could not revoke an ended sign-in at the provider: %s", exc)
            continue
        outcome = "success" if answer.status == 200 else "failure"
        audit.record("upstream_token_revoked", outcome, kind=hint, status=answer.status)
