"""An Mcp-Session-Id belongs to the user whose request opened it; another user's token cannot use it."""

from django.conf import settings

from infra.shared_cache import shared_add, shared_get


def _key(session_id: str) -> str:
    return f"{settings.MUSTER_CONFIG.storage.valkey.key_prefix}mcp:session:{session_id}"


# A session's owner never changes once recorded, so a worker remembers the owners it has looked up.
_owners: dict[str, str] = {}
OWNERS_KEPT = 10_000


async def may_use(session_id: str, user_id: int) -> bool:
    """True unless the session was opened by someone else."""
    owner = _owners.get(session_id)
    if owner is None:
        owner = await shared_get(_key(session_id))
        if owner is not None and len(_owners) < OWNERS_KEPT:
            _owners[session_id] = owner
    return owner is None or owner == str(user_id)


async def bind(session_id: str, user_id: int) -> None:
    """Record the opener (first writer wins) for as long as a sign-in may last."""
    ttl = int(settings.MUSTER_CONFIG.session_duration.total_seconds())
    await shared_add(_key(session_id), str(user_id), ttl)
