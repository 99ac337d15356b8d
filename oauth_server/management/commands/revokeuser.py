"""manage.py revokeuser: sign a user out everywhere by revoking every token family they hold."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from oauth_server.families import revoke_families_of


class Command(BaseCommand):
    help = "Revoke every token family of a user (sign out everywhere)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user named {options['username']!r}")
        count = revoke_families_of("command", user_id=user.pk)
        self.stdout.write(f"revoked {count} token families of {user.get_username()}")
