"""manage.py pruneclients: remove dynamically registered clients that nobody has used for a while."""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, RefreshToken

from oauth_server.clients.lifecycle import delete_client


class Command(BaseCommand):
    help = "Delete DCR clients with no live tokens that were not used (or created) in the last N days."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--unused-days", type=int, required=True, help="Keep clients used within this many days.")
        parser.add_argument("--dry-run", action="store_true", help="Only list what would be deleted.")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["unused_days"]
        if days < 1:
            raise CommandError("--unused-days must be 1 or more")
        now = timezone.now()
        cutoff = now - timedelta(days=days)
        live_access = AccessToken.objects.filter(application=OuterRef("pk"), expires__gt=now)
        live_refresh = RefreshToken.objects.filter(application=OuterRef("pk"), revoked__isnull=True)
        unused = (
            Application.objects.filter(registration_source=Application.RegistrationSource.DCR, created__lt=cutoff)
            .filter(Q(muster_registration__last_used__isnull=True) | Q(muster_registration__last_used__lt=cutoff))
            .exclude(Exists(live_access))
            .exclude(Exists(live_refresh))
        )
        count = 0
        for client in unused:
            count += 1
            if not options["dry_run"]:
                delete_client(client)
        verb = "would delete" if options["dry_run"] else "deleted"
        self.stdout.write(f"{verb} {count} unused dynamically registered clients")
