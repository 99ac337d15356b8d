"""manage.py ensureadmin: on a fresh site, create the superuser `admin` and print its password once."""

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the superuser 'admin' with a random password when no superuser exists yet."

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(18)
        users.create_superuser(username="admin", email="", password=password)
        self.stdout.write(f"Created the superuser 'admin' with password: {password}")
        self.stdout.write("This is shown once. Change it with: .venv/bin/python manage.py changepassword admin")
