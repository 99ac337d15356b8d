"""manage.py revokefamily: revoke one token family (a sign-in) at once."""

from typing import Any

from django.core.management.base import CommandError
from oauth2_provider.models import RefreshToken

from oauth_server.families import revoke_family
from oauth_server.management.family_command import FamilyCommand


class Command(FamilyCommand):
    help = "Revoke a token family: its refresh tokens stop refreshing and its access tokens stop working."

    def handle(self, *args: Any, **options: Any) -> None:
        family = self.family(options)
        if not RefreshToken.objects.filter(token_family=family).exists():
            raise CommandError(f"no token family {family}")
        revoke_family(family, reason="command")
        self.stdout.write(f"revoked token family {family}")
