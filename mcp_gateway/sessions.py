"""An Mcp-Session-Id belongs to the user whose request opened it; another user's token cannot use it."""

from django.conf import settings

from mcp_gateway.shared_cache import shared_add, shared_get


def _key(session_id: str) -> str:
    return f"{settings.MUSTER_CONFIG.storage.valkey.key_prefix}mcp:session:{session_id}"


async def may_use(session_id: str, user_id: int) -> bool:
    """True unless the session was opened by someone else."""
    owner = await shared_get(_key(session_id))
    return owner is None or owner == str(user_id)


async def bind(session_id: str, user_id: int) -> None:
    """Record the opener (first writer wins) for as long as a sign-in may last."""
    ttl = int(settings.MUSTER_CONFIG.session_duration.total_seconds())
    await shared_add(_key(session_id), str(user_id), ttl)
