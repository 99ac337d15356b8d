"""manage.py pruneupstream: delete stored provider tokens that no live token family or code holds any more."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from oauth_server.upstream import sessions as upstream_sessions


class Command(BaseCommand):
    help = (
        "Delete upstream sign-ins whose token family has no live refresh token, and ones whose authorization "
        "code was never exchanged (after a day). Run it after cleartokens."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")

    def handle(self, *args: Any, **options: Any) -> None:
        stale = upstream_sessions.stale()
        if options["dry_run"]:
            self.stdout.write(f"would delete {stale.count()} stale upstream sign-ins")
            return
        deleted, _ = stale.delete()
        self.stdout.write(f"deleted {deleted} stale upstream sign-ins")
