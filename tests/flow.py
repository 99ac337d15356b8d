"""Test helpers that walk the authorization code flow through Django's test client."""

import base64
import hashlib
import uuid
from urllib.parse import parse_qs, quote, urlsplit

from django.test import Client
from oauth2_provider.models import RefreshToken

from tests.conftest import REDIRECT_URI, authorize_url, pkce_pair


def consent_form(response) -> dict[str, str]:
    """The hidden fields of the consent page, as the browser would post them."""
    form = response.context["form"]
    return {name: field.value() or "" for name, field in ((n, form[n]) for n in form.fields) if name != "allow"}


def issue_code(client: Client, client_id: str, **overrides: str | None) -> tuple[str, str, dict[str, list[str]]]:
    """Signed-in user allows the request; returns (code, verifier, redirect query)."""
    verifier, challenge = pkce_pair()
    page = client.get(authorize_url(client_id, challenge, **overrides))
    assert page.status_code == 200, page.content
    answer = client.post("/oauth/authorize", {**consent_form(page), "allow": "Authorize"})
    assert answer.status_code == 302, answer.content
    query = parse_qs(urlsplit(answer["Location"]).query)
    return query["code"][0], verifier, query


def _split(extra: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Form fields and request headers (Django's HTTP_* names) from one set of keyword arguments."""
    headers = {k: v for k, v in extra.items() if k.startswith("HTTP_")}
    return {k: v for k, v in extra.items() if k not in headers}, headers


def exchange(client: Client, client_id: str, code: str, verifier: str, **extra: str):
    fields, headers = _split(extra)
    return client.post(
        "/oauth/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": REDIRECT_URI,
            "client_id": client_id,
            **fields,
        },
        **headers,
    )


def refresh(client: Client, client_id: str, refresh_token: str, **extra: str):
    fields, headers = _split(extra)
    return client.post(
        "/oauth/token",
        {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id, **fields},
        **headers,
    )


def checksum(token: str) -> str:
    """How tokens are stored: their SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def basic(client_id: str, secret: str) -> str:
    """An `Authorization: Basic` value; RFC 6749 §2.3.1 form-encodes both parts, then base64."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def sign_in(user, client_id: str, refreshes: int = 0) -> dict[str, str]:
    """A real sign-in of `user` in the client, refreshed `refreshes` times; returns the newest token pair."""
    browser = Client()
    browser.force_login(user)
    code, verifier, _ = issue_code(browser, client_id)
    answer = exchange(browser, client_id, code, verifier)
    assert answer.status_code == 200, answer.content
    tokens = answer.json()
    for _ in range(refreshes):
        answer = refresh(browser, client_id, tokens["refresh_token"])
        assert answer.status_code == 200, answer.content
        tokens = answer.json()
    return tokens


def family_of(tokens: dict[str, str]) -> uuid.UUID:
    return RefreshToken.objects.get(token_checksum=checksum(tokens["refresh_token"])).token_family
