"""This server's access tokens as a TokenVerifier: a short in-process cache, then Redis (redis.asyncio), then the DB.

A token passes only if it exists, is unexpired, belongs to an active user, was issued for the MCP
resource and came from a refresh-token family (so registration tokens and user-less tokens never pass).
Revocations overwrite the shared entry with a tombstone (`invalidate`) and the in-process entry lives at
most half a second, so every worker refuses a revoked token within a second. A shared entry is believed only
if the database's recent revocations (`revocations`, read at most every half second) do not name the token,
so a revocation whose tombstone could not be written (Redis paused or down) holds all the same.
No entry holds an upstream credential: the id_token is read only when asked for (`Identity.id_token`).
"""

import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from datetime import UTC, datetime

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone
from oauth2_provider.models import AccessToken
from redis.exceptions import RedisError

from infra import metrics
from infra.shared_cache import async_redis, sync_redis
from infra.single_flight import SingleFlight
from mcp_gateway import revocations
from mcp_gateway.identity import Identity
from oauth_server.resources import mcp_resource

log = logging.getLogger("muster.mcp")
LOCAL_SECONDS = 0.5
SHARED_SECONDS = 60
MISS_SECONDS = 5
LOCAL_MAX_ENTRIES = 10_000
_local: dict[str, tuple[float, Identity | None]] = {}
# Requests that miss the in-process entry together share one lookup (it expires for all of them at once).
_lookups: SingleFlight[tuple[str, Identity | None]] = SingleFlight()


def checksum(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _shared_key(token_checksum: str) -> str:
    return f"{settings.MUSTER_CONFIG.storage.valkey.key_prefix}mcp:at:{token_checksum}"


class AccessTokenVerifier:
    """The access tokens this authorization server issued for the MCP resource."""

    async def verify(self, token: str) -> Identity | None:
        """The identity behind a bearer token, or None when the token must be refused."""
        started = time.perf_counter()
        token_checksum = checksum(token)
        now = time.monotonic()
        if (hit := _local.get(token_checksum)) and hit[0] > now:
            metrics.token_validation("local", time.perf_counter() - started)
            return _unexpired(hit[1])
        source, identity = await _lookups.run(token_checksum, lambda: _shared_or_database(token_checksum))
        if len(_local) >= LOCAL_MAX_ENTRIES:
            for stale in [key for key, (until, _) in _local.items() if until <= now]:
                del _local[stale]
        if len(_local) < LOCAL_MAX_ENTRIES:
            _local[token_checksum] = (now + LOCAL_SECONDS, identity)
        metrics.token_validation(source, time.perf_counter() - started)
        return _unexpired(identity)


access_tokens = AccessTokenVerifier()  # shared by /mcp and /user-tokens


def _unexpired(identity: Identity | None) -> Identity | None:
    return identity if identity is not None and identity.expires > datetime.now(UTC) else None


async def _shared_or_database(token_checksum: str) -> tuple[str, Identity | None]:
    """Where the answer came from ("redis" or "database") and the identity, if any.

    If Redis fails, the database (which is authoritative) answers alone. An entry of a token the database
    lists as lately revoked is refused: its tombstone may never have been written.
    """
    redis = async_redis()
    if redis is None:
        return "database", await _from_database(token_checksum)
    key = _shared_key(token_checksum)
    try:
        blob = await redis.get(key)
    except (RedisError, OSError):
        log.warning("token cache unavailable; validating against the database", exc_info=False)
        return "database", await _from_database(token_checksum)
    if blob is not None:
        shared = _loads(blob)
        return "redis", None if shared is None or await revocations.recent.revoked(token_checksum) else shared
    identity = await _from_database(token_checksum)
    ttl = min(SHARED_SECONDS, int((identity.expires - datetime.now(UTC)).total_seconds())) if identity else MISS_SECONDS
    if ttl > 0:
        # NX: a revocation's tombstone written while we read the database must win over what we read.
        with contextlib.suppress(RedisError, OSError):
            await redis.set(key, _dumps(identity), ex=ttl, nx=True)
    return "database", identity


def _dumps(identity: Identity | None) -> str:
    """The shared entry: the identity's fields, none of them a credential."""
    if identity is None:
        return "null"
    return json.dumps({**dataclasses.asdict(identity), "expires": identity.expires.isoformat()})


def _loads(blob: bytes) -> Identity | None:
    """An entry back as an Identity; fields it does not know (an older release's) are ignored."""
    fields = json.loads(blob)
    if fields is None:
        return None
    return Identity(
        subject=fields["subject"],
        user_id=fields["user_id"],
        client_id=fields["client_id"],
        scopes=tuple(fields["scopes"]),
        session_id=fields["session_id"],
        expires=datetime.fromisoformat(fields["expires"]),
        groups=tuple(fields.get("groups", ())),
    )


@database_sync_to_async
def _from_database(token_checksum: str) -> Identity | None:
    token = (
        AccessToken.objects.select_related("user__upstream_identity", "application", "refresh_token")
        .filter(token_checksum=token_checksum)
        .first()
    )
    if token is None or token.user is None or not token.user.is_active or token.expires <= timezone.now():
        return None
    refresh_token = getattr(token, "refresh_token", None)  # the family's member that minted this token
    family = refresh_token.token_family if refresh_token is not None and refresh_token.revoked is None else None
    if family is None or mcp_resource() not in (token.resource or []):
        return None
    upstream = getattr(token.user, "upstream_identity", None)
    return Identity(
        subject=upstream.subject if upstream else token.user.get_username(),
        user_id=token.user_id,
        client_id=token.application.client_id,
        scopes=tuple(token.scope.split()),
        session_id=str(family),
        expires=token.expires,
        groups=tuple(upstream.groups) if upstream else (),
    )


def invalidate(token_checksums: list[str]) -> None:
    """Forget revoked tokens at once: here, and in the shared cache that every worker reads."""
    for token_checksum in token_checksums:
        _local.pop(token_checksum, None)
        _lookups.forget(token_checksum)  # a lookup begun before the revocation is not shared any more
    redis = sync_redis()
    if redis is None or not token_checksums:
        return
    try:
        with redis.pipeline(transaction=False) as pipeline:
            for token_checksum in token_checksums:  # a tombstone, not a delete: see _shared_or_database
                pipeline.set(_shared_key(token_checksum), "null", ex=SHARED_SECONDS)
            pipeline.execute()
    except (RedisError, OSError):
        # The revocation's rows (`revocations.record`) committed with it: every worker refuses the token anyway.
        log.warning("could not update %d entries of the token cache", len(token_checksums))
