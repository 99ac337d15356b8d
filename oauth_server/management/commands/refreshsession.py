"""manage.py refreshsession: refresh one family's upstream sign-in without rotating the client's tokens."""

from typing import Any

from django.core.management.base import CommandError

from oauth_server import families
from oauth_server.management.family_command import FamilyCommand
from oauth_server.upstream import discovery
from oauth_server.upstream import sessions as upstream_sessions


class Command(FamilyCommand):
    help = "Refresh the identity provider's token of a token family (muster's RefreshSession); client tokens stay."

    def handle(self, *args: Any, **options: Any) -> None:
        family = self.family(options)
        try:
            discovery.ensure()
            session = families.refresh_upstream_session(family)
        except discovery.DiscoveryError as exc:
            raise CommandError(f"the identity provider is not available: {exc}") from exc
        except upstream_sessions.UpstreamSessionEnded as exc:
            raise CommandError(f"the provider ended this sign-in ({exc}); token family {family} is revoked") from exc
        except (families.RefreshSessionError, upstream_sessions.UpstreamUnavailable) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"refreshed the upstream sign-in of token family {family} (expires {session.expires_at})")
