"""The base of the commands that act on one token family named by its id."""

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class FamilyCommand(BaseCommand):
    """Takes the family id (a UUID) as its one argument; `family(options)` parses it or fails clearly."""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("family", help="The family id (a UUID, as shown in the admin).")

    @staticmethod
    def family(options: dict[str, Any]) -> uuid.UUID:
        try:
            return uuid.UUID(options["family"])
        except ValueError as exc:
            raise CommandError(f"{options['family']!r} is not a token family id (a UUID)") from exc
