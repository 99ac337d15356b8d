"""A person in Chromium: sign in, consent, the code at the app's loopback address, and the ways it can go wrong."""

import secrets

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser_flow import sign_in, start_authorization
from tests.servers.loopback_app import LoopbackApp
from tests.servers.site import Site
from tests.support.flow import exchange

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def client_id(site: Site) -> str:
    return site.create_public_client("Notes app")


def test_a_person_signs_in_allows_and_the_app_gets_a_code_with_state_and_iss(
    page: Page, site: Site, client_id: str, app: LoopbackApp, http: httpx.Client
) -> None:
    state = secrets.token_urlsafe(24)
    verifier = start_authorization(page, site.base_url, client_id, app.redirect_uri, state)
    expect(page.get_by_role("heading", name=f"Sign in to 127.0.0.1:{site.port}")).to_be_visible()

    sign_in(page, site.username, site.password)
    expect(page.get_by_role("heading", name=f"Allow Notes app to use 127.0.0.1:{site.port}?")).to_be_visible()
    expect(page.get_by_text("only returns to programs on this computer")).to_be_visible()
    page.get_by_role("button", name="Allow").click()

    expect(page.get_by_text("You can close this window")).to_be_visible()
    arrival = app.last()
    assert arrival.one("state") == state
    assert arrival.one("iss") == site.base_url
    tokens = exchange(site.over(http), client_id, arrival.one("code"), verifier, redirect_uri=app.redirect_uri)
    assert tokens.status_code == 200, tokens.text


def test_the_app_learns_nothing_of_the_authorization_page_from_the_browser(
    page: Page, site: Site, client_id: str, app: LoopbackApp
) -> None:
    # Given a person who allows an app (the authorization page's URL carries the request's state and challenge)
    start_authorization(page, site.base_url, client_id, app.redirect_uri, secrets.token_urlsafe(24))
    sign_in(page, site.username, site.password)

    page.get_by_role("button", name="Allow").click()

    # Then the browser sends the app no Referer: nothing of our pages' URLs leaves for another origin
    expect(page.get_by_text("You can close this window")).to_be_visible()
    assert "referer" not in app.last().headers, app.last().headers


def test_a_wrong_password_keeps_the_username_and_says_what_went_wrong(page: Page, site: Site) -> None:
    page.goto(f"{site.base_url}/oauth/login")

    sign_in(page, site.username, "not the password")

    expect(page.get_by_role("alert")).to_contain_text("didn't match")
    expect(page.get_by_label("Username")).to_have_value(site.username)
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_label("Password")).to_be_focused()


def test_deny_sends_access_denied_with_state_and_iss_and_no_code(
    page: Page, site: Site, client_id: str, app: LoopbackApp
) -> None:
    state = secrets.token_urlsafe(24)
    start_authorization(page, site.base_url, client_id, app.redirect_uri, state)
    sign_in(page, site.username, site.password)

    page.get_by_role("button", name="Deny").click()

    expect(page.get_by_text("You can close this window")).to_be_visible()
    arrival = app.last()
    assert arrival.one("error") == "access_denied"
    assert arrival.one("state") == state
    assert arrival.one("iss") == site.base_url
    assert "code" not in arrival.query


def test_an_unregistered_redirect_uri_shows_an_error_page_and_sends_the_person_nowhere(
    page: Page, site: Site, client_id: str
) -> None:
    answers: list[int] = []
    page.on("response", lambda response: answers.append(response.status))

    start_authorization(page, site.base_url, client_id, "https://attacker.example/callback", "s" * 32)

    assert answers[0] == 400, answers
    expect(page.get_by_role("heading", name="This sign-in request cannot continue")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("invalid_request")
    assert page.url.startswith(site.base_url)


def test_not_you_signs_out_and_the_same_request_continues_for_the_other_person(
    page: Page, site: Site, client_id: str, app: LoopbackApp
) -> None:
    # Given alice is signed in and sees the consent page of a request that bob started on her computer
    bob = f"bob-{secrets.token_hex(3)}"
    bob_password = site.create_user(bob)
    state = secrets.token_urlsafe(24)
    start_authorization(page, site.base_url, client_id, app.redirect_uri, state)
    sign_in(page, site.username, site.password)
    expect(page.locator("dd", has_text=site.username)).to_be_visible()

    # When she presses "Not you? Sign out"
    page.get_by_role("button", name="Not you? Sign out").click()

    # Then the browser is at the sign-in page of the same request, and bob finishes it as himself
    expect(page.get_by_role("heading", name=f"Sign in to 127.0.0.1:{site.port}")).to_be_visible()
    sign_in(page, bob, bob_password)
    expect(page.locator("dd", has_text=bob)).to_be_visible()
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_text("You can close this window")).to_be_visible()
    assert app.last().one("state") == state


def test_a_form_from_a_stale_page_is_refused_kindly_and_signs_nobody_in(page: Page, site: Site) -> None:
    # Given a sign-in page whose session cookies are gone (a browser restart, cleared cookies)
    page.goto(f"{site.base_url}/oauth/login")
    page.context.clear_cookies()

    sign_in(page, site.username, site.password)

    expect(page.get_by_role("heading", name="Nothing was changed")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("expired")
    page.get_by_role("link", name="Go back").click()
    expect(page.get_by_role("heading", name=f"Sign in to 127.0.0.1:{site.port}")).to_be_visible()
    assert not [cookie for cookie in page.context.cookies() if cookie["name"] == "sessionid"]
