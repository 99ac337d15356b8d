"""What a person does on our pages in a real browser: sign in, start an app's authorization, and so on."""

import secrets

import httpx
from playwright.sync_api import Page, expect

from tests.servers.loopback_app import LoopbackApp
from tests.servers.site import Site
from tests.support.authorize import authorize_url
from tests.support.flow import exchange
from tests.support.pkce import pkce_pair


def sign_in(page: Page, username: str, password: str) -> None:
    """On the sign-in page: type the username and the password, press Sign in."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def start_authorization(page: Page, base_url: str, client_id: str, redirect_uri: str, state: str) -> str:
    """The app opens the browser at its authorization request (PKCE S256); returns the app's code verifier."""
    verifier, challenge = pkce_pair()
    page.goto(base_url + authorize_url(client_id, challenge, state=state, redirect_uri=redirect_uri))
    return verifier


def connect_app(page: Page, site: Site, client_id: str, app: LoopbackApp, username: str, password: str) -> dict:
    """A person connects an app: authorization in the browser (signing in if asked), Allow, then the app exchanges
    its code. Returns the app's token response."""
    verifier = start_authorization(page, site.base_url, client_id, app.redirect_uri, secrets.token_urlsafe(24))
    if page.get_by_label("Password").count():
        sign_in(page, username, password)
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_text("You can close this window")).to_be_visible()
    with httpx.Client() as http:
        answer = exchange(site.over(http), client_id, app.last().one("code"), verifier, redirect_uri=app.redirect_uri)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())
