"""manage.py revokefamily: revoke one token family (a sign-in) at once."""

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from oauth2_provider.models import RefreshToken

from oauth_server.families import revoke_family


class Command(BaseCommand):
    help = "Revoke a token family: its refresh tokens stop refreshing and its access tokens stop working."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("family", help="The family id (a UUID, as shown in the admin).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            family = uuid.UUID(options["family"])
        except ValueError as exc:
            raise CommandError(f"{options['family']!r} is not a token family id (a UUID)") from exc
        if not RefreshToken.objects.filter(token_family=family).exists():
            raise CommandError(f"no token family {family}")
        revoke_family(family, reason="command")
        self.stdout.write(f"revoked token family {family}")
