"""The one OAuth flow driver (authorize -> sign-in -> consent -> code -> token -> refresh -> revoke).

It speaks through a transport: `InProcess` (Django's test client, the site in this process and the tests'
database; a bare Django `Client` stands for `InProcess(client)`) or `OverHttp` (httpx against a running site).
"""

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import httpx
from django.test import Client

from tests.support.authorize import REDIRECT_URI, authorize_url
from tests.support.forms import Page, page_form
from tests.support.pkce import pkce_pair


class Answer(Page, Protocol):
    """What both transports answer: a status, headers, a body, its JSON."""

    headers: Mapping[str, str]

    def json(self) -> Any: ...


@dataclass(frozen=True)
class InProcess:
    """Requests through Django's test client: the site in this process, on the tests' database."""

    client: Client

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Answer:
        return self.client.get(url, headers=headers)

    def post(self, url: str, data: Mapping[str, str], headers: Mapping[str, str] | None = None) -> Answer:
        return self.client.post(url, data, headers=headers)


@dataclass(frozen=True)
class OverHttp:
    """Requests over HTTP with httpx to a running site (`tests.servers.site.Site`) at `base_url`."""

    client: httpx.Client
    base_url: str

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Answer:
        return self.client.get(urljoin(self.base_url, url), headers=headers)

    def post(self, url: str, data: Mapping[str, str], headers: Mapping[str, str] | None = None) -> Answer:
        return self.client.post(urljoin(self.base_url, url), data=data, headers=headers)


Transport = InProcess | OverHttp
# At the site's sign-in URL (through the transport), sign in; returns the URL the site sends the browser on to.
SignIn = Callable[[Transport, str], str]


def _through(transport: Transport | Client) -> Transport:
    return InProcess(transport) if isinstance(transport, Client) else transport


def consent_form(answer: Page) -> dict[str, str]:
    """The fields of the consent page's form, as the browser would post them (without the Allow button)."""
    return dict(page_form(answer, "consent")["inputs"])


def with_password(username: str, password: str) -> SignIn:
    """Sign in on the site's own sign-in page."""

    def sign_in(transport: Transport, login_url: str) -> str:
        login = page_form(transport.get(login_url), "sign-in")
        fields = {**login["inputs"], "username": username, "password": password}
        signed_in = transport.post(urljoin(login_url, login.get("action", "")), fields)
        assert signed_in.status_code == 302, f"sign-in failed: {signed_in.status_code} {signed_in.content[:500]!r}"
        return urljoin(login_url, signed_in.headers["location"])

    return sign_in


def at_provider(provider_sign_in: Callable[[str], str]) -> SignIn:
    """Sign in at the identity provider: the sign-in URL sends the browser there, `provider_sign_in` signs in
    and returns the callback URL, the callback sends the browser on."""

    def sign_in(transport: Transport, login_url: str) -> str:
        to_provider = transport.get(login_url)
        assert to_provider.status_code == 302, (
            f"login answered {to_provider.status_code}: {to_provider.content[:300]!r}"
        )
        callback = provider_sign_in(to_provider.headers["location"])
        back = transport.get(callback)
        assert back.status_code == 302, f"the callback answered {back.status_code}: {back.content[:300]!r}"
        return urljoin(callback, back.headers["location"])

    return sign_in


def allow(transport: Transport | Client, url: str, login: SignIn | None = None) -> str:
    """Open the authorization request `url`, sign in with `login` when sent to the sign-in page, allow;
    returns where the site redirects the browser (the client's redirect URI with the code)."""
    through = _through(transport)
    answer = through.get(url)
    if login is not None and answer.status_code == 302:
        login_url = urljoin(url, answer.headers["location"])
        assert urlsplit(login_url).path == "/oauth/login", f"authorize sent the browser to {login_url}"
        url = login(through, login_url)
        assert urlsplit(url).path == "/oauth/authorize", f"sign-in returned to {url}, not to authorize"
        answer = through.get(url)
    consent = page_form(answer, "consent")
    assert ("allow", "Authorize") in consent["buttons"], consent
    decided = through.post(urljoin(url, consent.get("action", "")), {**consent["inputs"], "allow": "Authorize"})
    assert decided.status_code == 302, f"consent answered {decided.status_code}: {decided.content[:500]!r}"
    return decided.headers["location"]


def issue_code(
    transport: Transport | Client, client_id: str, *, login: SignIn | None = None, **overrides: str | None
) -> tuple[str, str, dict[str, list[str]]]:
    """The user (signed in, or signing in with `login`) allows the request; returns (code, verifier, redirect
    query). `overrides` change the authorization request's parameters."""
    verifier, challenge = pkce_pair()
    location = allow(transport, authorize_url(client_id, challenge, **overrides), login)
    parts = urlsplit(location)
    assert parts[:3] == urlsplit(overrides.get("redirect_uri") or REDIRECT_URI)[:3], location
    query = parse_qs(parts.query)
    assert "code" in query, f"no code in {location}"
    return query["code"][0], verifier, query


def exchange(
    transport: Transport | Client,
    client_id: str,
    code: str,
    verifier: str,
    *,
    headers: Mapping[str, str] | None = None,
    **fields: str,
) -> Answer:
    """The client exchanges the code at the token endpoint; `fields` add to or replace the form's."""
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": REDIRECT_URI,
        "client_id": client_id,
        **fields,
    }
    return _through(transport).post("/oauth/token", data, headers)


def refresh(
    transport: Transport | Client,
    client_id: str,
    refresh_token: str,
    *,
    headers: Mapping[str, str] | None = None,
    **fields: str,
) -> Answer:
    """The client refreshes; `fields` add to or replace the form's."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id, **fields}
    return _through(transport).post("/oauth/token", data, headers)


def revoke(transport: Transport | Client, client_id: str, token: str, **fields: str) -> Answer:
    """The client revokes a token (RFC 7009); `fields` add to the form."""
    return _through(transport).post("/oauth/revoke", {"token": token, "client_id": client_id, **fields})


def tokens(
    transport: Transport | Client, client_id: str, *, login: SignIn | None = None, refreshes: int = 0
) -> dict[str, Any]:
    """A whole sign-in (code, exchange) refreshed `refreshes` times; returns the newest token response."""
    code, verifier, _ = issue_code(transport, client_id, login=login)
    answer = exchange(transport, client_id, code, verifier)
    assert answer.status_code == 200, answer.content
    issued = dict(answer.json())
    for _ in range(refreshes):
        answer = refresh(transport, client_id, issued["refresh_token"])
        assert answer.status_code == 200, answer.content
        issued = dict(answer.json())
    return issued


def sign_in(user: Any, client_id: str, refreshes: int = 0) -> dict[str, Any]:
    """A real sign-in of `user` in the client (in process), refreshed `refreshes` times; the newest tokens."""
    browser = Client()
    browser.force_login(user)
    return tokens(browser, client_id, refreshes=refreshes)


def basic(client_id: str, secret: str) -> str:
    """An `Authorization: Basic` value; RFC 6749 §2.3.1 form-encodes both parts, then base64."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()
