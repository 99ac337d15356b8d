"""Benchmark of upstream identity: what signing in at an OIDC provider adds to refreshes, /mcp and sign-in.

Run: .venv/bin/python bench/upstream_identity.py [rounds]. Starts a real OIDC provider process
(tests.servers.oidc_provider) on a free port and uses a throw-away SQLite database with the in-memory
cache. Each figure is measured side by side with its local-accounts baseline in the same run. Prints
figures and ratios; it asserts nothing.
"""

import dataclasses
import json
import sys
from collections.abc import Callable
from datetime import timedelta

from in_process import median_us, setup_django

setup_django()

from asgiref.sync import async_to_sync  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, RequestFactory  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402

from mcp_gateway import bearer  # noqa: E402
from oauth_server.models import UpstreamSession  # noqa: E402
from oauth_server.upstream import discovery, id_tokens, sealing  # noqa: E402
from oauth_server.upstream.provider import configured  # noqa: E402
from oauth_server.views.token import TokenView  # noqa: E402
from tests.servers.oidc_provider import OidcProvider  # noqa: E402
from tests.support.flow import exchange, issue_code  # noqa: E402
from tests.support.tokens import family_of  # noqa: E402
from tests.upstream_flow import upstream_code, use_provider  # noqa: E402


def refresher(client_id: str, tokens: dict[str, str]) -> Callable[[], dict[str, str]]:
    """One rotation per call, each presenting the token the previous one returned."""
    factory, view = RequestFactory(), TokenView.as_view()

    def rotate() -> dict[str, str]:
        fields = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}
        response = view(factory.post("/oauth/token", fields))
        assert response.status_code == 200, response.content
        tokens.update(json.loads(response.content))
        return tokens

    return rotate


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    setup_test_environment()
    call_command("migrate", verbosity=0)
    app = Application.objects.create(
        name="bench",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="http://127.0.0.1/callback",
    )
    local_config = settings.MUSTER_CONFIG
    with OidcProvider() as provider:
        print(f"rounds: {rounds}, database: SQLite, cache: in-memory, provider: {provider.issuer}")

        # Local accounts: the baseline
        local_user = get_user_model().objects.create_user(username="local", password="x" * 20)
        browser = Client()
        browser.force_login(local_user)
        code, verifier, _ = issue_code(browser, app.client_id)
        local_tokens = exchange(browser, app.client_id, code, verifier).json()
        local_refresh = median_us(refresher(app.client_id, local_tokens), rounds)
        local_lookup = median_us(
            lambda: async_to_sync(bearer._from_database)(bearer.checksum(local_tokens["access_token"])), rounds
        )

        # The same with users signing in at the provider
        use_provider(settings, provider)
        sign_in = median_us(lambda: upstream_code(Client(), app.client_id, provider), max(5, rounds // 10))
        code, verifier, _ = upstream_code(Client(), app.client_id, provider)
        tokens = exchange(Client(), app.client_id, code, verifier).json()
        rotate = refresher(app.client_id, tokens)
        upstream_refresh = median_us(rotate, rounds)
        upstream_lookup = median_us(
            lambda: async_to_sync(bearer._from_database)(bearer.checksum(tokens["access_token"])), rounds
        )

        def near_expiry_then_rotate() -> None:
            UpstreamSession.objects.filter(token_family=family_of(tokens)).update(
                expires_at=timezone.now() + timedelta(seconds=30)
            )
            rotate()

        provider_refresh = median_us(near_expiry_then_rotate, max(5, rounds // 4))

        metadata = discovery.metadata()
        assert metadata is not None
        code, verifier, _ = upstream_code(Client(), app.client_id, provider)
        settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, expose_upstream_id_token=True)
        id_token = exchange(Client(), app.client_id, code, verifier).json()["id_token"]
        verify = median_us(lambda: id_tokens.verify(id_token, configured(), metadata, nonce=None), rounds)
        blob = sealing.seal({"id_token": id_token, "access_token": "a" * 40, "refresh_token": "r" * 40}, "owner")
        unseal = median_us(lambda: sealing.unseal(blob, "owner"), rounds)
        settings.MUSTER_CONFIG = local_config
        discovery.forget()

    print(f"refresh, local accounts:                        {local_refresh:9.0f} µs")
    print(
        f"refresh, upstream sign-in far from expiry:      {upstream_refresh:9.0f} µs"
        f"   ratio upstream/local {upstream_refresh / local_refresh:.2f}"
    )
    print(f"refresh that first refreshes at the provider:   {provider_refresh:9.0f} µs")
    print(f"/mcp token lookup (database), local accounts:   {local_lookup:9.0f} µs")
    print(
        f"/mcp token lookup (database), upstream user:    {upstream_lookup:9.0f} µs"
        f"   ratio upstream/local {upstream_lookup / local_lookup:.2f}"
    )
    print(f"whole sign-in through the provider and consent: {sign_in / 1000:9.1f} ms")
    print(f"id_token check (RS256, cached JWKS):            {verify:9.0f} µs")
    print(f"open sealed upstream tokens (AES-256-GCM):      {unseal:9.1f} µs")


if __name__ == "__main__":
    main()
