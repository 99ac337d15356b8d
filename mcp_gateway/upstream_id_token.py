"""The upstream provider's id_token of a token family, read from its sealed sign-in when someone asks."""

from channels.db import database_sync_to_async

from oauth_server.upstream import sessions as upstream_sessions


@database_sync_to_async
def upstream_id_token(family: str) -> str | None:
    """None for local accounts, and when the provider gave no id_token."""
    session = upstream_sessions.for_family(family)
    return upstream_sessions.tokens(session).get("id_token") if session is not None else None
