"""Benchmark of /oauth/token: refresh rotation through our view against DOT's stock view, and secret hashing.

Run: .venv/bin/python bench/token_endpoint.py [rounds]. Uses a throw-away SQLite database and the
in-memory cache (set REDIS_URL to measure the Redis-backed lock instead; the grace copy is in the
database). Prints figures and ratios; it asserts nothing.
"""

import json
import os
import sys
from collections.abc import Callable

from in_process import median_us, setup_django

setup_django()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.hashers import check_password, make_password  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, RequestFactory  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from oauth2_provider import views as dot_views  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402

from oauth_server.views.token import TokenView  # noqa: E402
from tests.support.flow import exchange, issue_code  # noqa: E402


def rotation_chain(view: Callable, client_id: str, refresh_token: str, rounds: int) -> float:
    """Median µs per refresh, each rotating the token the previous one returned."""
    factory = RequestFactory()
    current = {"token": refresh_token}

    def rotate() -> None:
        request = factory.post(
            "/oauth/token", {"grant_type": "refresh_token", "refresh_token": current["token"], "client_id": client_id}
        )
        response = view(request)
        assert response.status_code == 200, response.content
        current["token"] = json.loads(response.content)["refresh_token"]

    return median_us(rotate, rounds)


def fresh_refresh_token(browser: Client, client_id: str) -> str:
    code, verifier, _ = issue_code(browser, client_id)
    return exchange(browser, client_id, code, verifier).json()["refresh_token"]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    setup_test_environment()  # the test client's host and template context, to walk the consent page
    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user(username="bench", password="x" * 20)
    app = Application.objects.create(
        name="bench",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="http://127.0.0.1/callback",
    )
    browser = Client()
    browser.force_login(user)

    cache_kind = "Redis" if os.environ.get("REDIS_URL") else "in-memory"
    print(f"rounds: {rounds}, database: SQLite, cache: {cache_kind}")
    ours = rotation_chain(TokenView.as_view(), app.client_id, fresh_refresh_token(browser, app.client_id), rounds)
    stock = rotation_chain(
        dot_views.TokenView.as_view(), app.client_id, fresh_refresh_token(browser, app.client_id), rounds
    )
    print(f"refresh rotation, our view (lock + grace):  {ours:9.0f} µs")
    print(f"refresh rotation, DOT's stock view:         {stock:9.0f} µs   ratio ours/stock {ours / stock:.2f}")

    factory = RequestFactory()
    old = fresh_refresh_token(browser, app.client_id)
    fields = {"grant_type": "refresh_token", "refresh_token": old, "client_id": app.client_id}
    TokenView.as_view()(factory.post("/oauth/token", fields))
    replay = median_us(lambda: TokenView.as_view()(factory.post("/oauth/token", fields)), rounds)
    print(f"grace replay of a rotated token:            {replay:9.0f} µs")

    secret = "s" * 128
    ours_hash = make_password(secret, hasher="muster_client_secret_sha256")
    pbkdf2_hash = make_password(secret, hasher="pbkdf2_sha256")
    fast = median_us(lambda: check_password(secret, ours_hash), rounds)
    slow = median_us(lambda: check_password(secret, pbkdf2_hash), max(5, rounds // 20))
    print(f"client secret check, salted SHA-256:        {fast:9.1f} µs")
    print(f"client secret check, PBKDF2 (Django users): {slow:9.0f} µs   ratio PBKDF2/ours {slow / fast:,.0f}")


if __name__ == "__main__":
    main()
