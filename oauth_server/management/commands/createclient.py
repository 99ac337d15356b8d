"""manage.py createclient: pre-register an OAuth client; prints its client_id (and secret, once) and how to try it."""

import json
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import Application
from oauthlib.oauth2 import WebApplicationClient

from infra import audit
from infra.urls import is_loopback_host
from oauth_server.models import ClientRegistration


class Command(BaseCommand):
    help = "Register an OAuth client by hand (registration source: manual)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="Name shown on the consent page.")
        parser.add_argument(
            "--redirect-uri",
            action="append",
            required=True,
            dest="redirect_uris",
            help="A redirect URI (repeat for several). Loopback URIs match any port.",
        )
        kind = parser.add_mutually_exclusive_group()
        kind.add_argument("--public", action="store_true", help="A public client (PKCE, no secret). The default.")
        kind.add_argument("--confidential", action="store_true", help="A confidential client with a secret.")
        parser.add_argument("--json", action="store_true", help="Print the result as one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        for uri in options["redirect_uris"]:
            parts = urlsplit(uri)
            if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
                raise CommandError(f"{uri}: http redirect URIs are allowed only on loopback; use https")
        confidential = options["confidential"]
        secret = generate_client_secret() if confidential else ""
        client = Application(
            name=options["name"],
            client_type=Application.CLIENT_CONFIDENTIAL if confidential else Application.CLIENT_PUBLIC,
            authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=" ".join(options["redirect_uris"]),
            client_secret=secret,
            registration_source=Application.RegistrationSource.MANUAL,
        )
        try:
            client.full_clean(exclude=["client_secret"])
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        client.save()
        ClientRegistration.objects.create(application=client, gate=ClientRegistration.Gate.OPERATOR)
        audit.record("client_registered", client_id=client.client_id, gate="operator", source="manual")
        issuer = settings.MUSTER_CONFIG.issuer
        result = {"client_id": client.client_id, "client_type": client.client_type, "name": client.name}
        if confidential:
            result["client_secret"] = secret
        result["issuer"] = issuer
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(f"client_id: {client.client_id}")
        if confidential:
            self.stdout.write(f"client_secret: {secret}")
            self.stdout.write("The secret is shown this once and stored hashed; keep it now.")
        self.stdout.write(f"issuer: {issuer}")
        self.stdout.write(f"discovery: {issuer}{reverse('oauth2_provider:oauth-server-metadata')}")
        self._example(client, options["redirect_uris"][0], confidential)

    def _example(self, client: Application, redirect_uri: str, confidential: bool) -> None:
        """An authorization request to try in a browser, and the code exchange that completes it (PKCE S256)."""
        issuer = settings.MUSTER_CONFIG.issuer
        pkce = WebApplicationClient(client.client_id)
        verifier = pkce.create_code_verifier(64)
        challenge = pkce.create_code_challenge(verifier, "S256")
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(settings.MUSTER_CONFIG.scopes),
                "state": secrets.token_urlsafe(24),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        who = f'-u "{client.client_id}:<client_secret>"' if confidential else f"-d client_id={client.client_id}"
        self.stdout.write("")
        self.stdout.write("Try it: open this in a browser, sign in and allow; the code is in the address you land on.")
        self.stdout.write(f"  {issuer}{reverse('oauth2_provider:authorize')}?{query}")
        self.stdout.write("Then exchange the code (the verifier belongs to this example's challenge):")
        self.stdout.write(
            f"  curl {who} -d grant_type=authorization_code -d code=<code> "
            f"--data-urlencode redirect_uri={redirect_uri} -d code_verifier={verifier} "
            f"{issuer}{reverse('oauth2_provider:token')}"
        )
