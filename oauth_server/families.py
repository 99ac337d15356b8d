"""Token families: one sign-in of one user in one client, followed through every rotation, revoked whole."""

from uuid import UUID

from oauth2_provider.models import RefreshToken

from infra import audit
from oauth_server.models import UpstreamSession
from oauth_server.upstream import sessions as upstream_sessions
from oauth_server.upstream.revocation import revoke_at_provider

UPSTREAM_ENDED = "upstream-session-ended"  # the provider ended the sign-in itself
USER_SIGN_OUT = "user-sign-out"  # the user signed out everywhere (DELETE /user-tokens, the account page)


def revoke_family(family: UUID | str, reason: str) -> None:
    """Revoke every live refresh token of the family and delete its access tokens (a fixed number of queries)."""
    owner = RefreshToken.objects.filter(token_family=family).values("user_id", "application__client_id").first()
    RefreshToken.revoke_family(family)
    ended = list(UpstreamSession.objects.select_related("identity").filter(token_family=family))
    if ended:  # the provider's tokens go with the family, and the provider is told (unless it ended it)
        UpstreamSession.objects.filter(pk__in=[session.pk for session in ended]).delete()
        if reason != UPSTREAM_ENDED:
            revoke_at_provider(ended)
    audit.record(
        "family_revoked",
        user_id=owner and owner["user_id"],
        client_id=owner and owner["application__client_id"],
        family=str(family),
        reason=reason,
    )


def revoke_families_of(reason: str, **owner: object) -> int:
    """Revoke every live family of a user (`user_id=`) or a client (`application=`); returns how many."""
    families = set(
        RefreshToken.objects.filter(revoked__isnull=True, **owner)
        .exclude(token_family=None)
        .values_list("token_family", flat=True)
    )
    for family in families:
        revoke_family(family, reason)
    return len(families)


class RefreshSessionError(Exception):
    """refresh_upstream_session could not run: unknown or revoked family, or no upstream session."""


def refresh_upstream_session(family: UUID | str) -> UpstreamSession:
    """Refresh one family's provider token without rotating the client's tokens (muster's RefreshSession)."""
    if not RefreshToken.objects.filter(token_family=family, revoked__isnull=True).exists():
        raise RefreshSessionError("no live token family with this id")
    session = upstream_sessions.for_family(family)
    if session is None:
        raise RefreshSessionError("this token family has no upstream session")
    try:
        return upstream_sessions.refresh(session, force=True)
    except upstream_sessions.UpstreamSessionEnded:
        revoke_family(family, reason=UPSTREAM_ENDED)
        raise
