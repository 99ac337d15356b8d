"""manage.py welcome: on a fresh site create the superuser `admin` (password shown once), then say where things are."""

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.urls import reverse

from oauth_server.views.front_door import short_name

RULE = "-" * 78


class Command(BaseCommand):
    help = "Create the superuser 'admin' when none exists, then print the site's URLs and what to try next."

    def handle(self, *args: Any, **options: Any) -> None:
        config = settings.MUSTER_CONFIG
        base, mcp = config.base_url, config.mcp_resource
        rows = [
            ("Front door", f"{base}/"),
            ("MCP URL", mcp),
            ("Admin", f"{base}{reverse('admin:index')}"),
            ("Your apps", f"{base}{reverse('account')}"),
        ]
        width = max(len(label) for label, _ in rows)
        lines = [RULE, f"{config.display_name} is starting.", ""]
        lines += [f"  {label.ljust(width)}  {url}" for label, url in rows]
        lines += ["", *self._admin_account(), ""]
        lines += [
            "Next: connect a client, for example Claude Code:",
            f"  claude mcp add --transport http {short_name()} {mcp}",
            "Every client's snippet is on the front door and in docs/clients.md. Stop with Ctrl-C.",
            RULE,
        ]
        self.stdout.write("\n".join(lines))

    def _admin_account(self) -> list[str]:
        users = get_user_model().objects
        existing = users.filter(is_superuser=True).order_by("pk").values_list("username", flat=True).first()
        if existing is not None:
            return [
                f"Admin user: {existing} (forgot the password? .venv/bin/python manage.py changepassword {existing})"
            ]
        password = secrets.token_urlsafe(18)
        users.create_superuser(username="admin", email="", password=password)
        return [
            f"Created the superuser 'admin' with password: {password}",
            "This is shown once. Change it with: .venv/bin/python manage.py changepassword admin",
        ]
