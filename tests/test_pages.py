"""Pages people see, checked at the source: the front door, the icon, error pages, the name, translatable text."""

import dataclasses
import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import path

from infra.config import Config, ConfigError, load_config

TEMPLATES = sorted((Path(__file__).resolve().parents[1] / "oauth_server" / "templates").rglob("*.html"))
# Words on our pages that are names, not prose: they read the same in every language.
PROPER_NAMES = {"Claude Code", "VS Code", "Cursor", "ChatGPT", "MCP Inspector", "(RFC 8414)", "(RFC 9728)", "·", "UTC"}


@pytest.fixture
def named(settings):
    settings.MUSTER_CONFIG = dataclasses.replace(
        settings.MUSTER_CONFIG, server_name="Acme MCP", base_url="https://mcp.acme.example"
    )


# --- the front door ---


@pytest.mark.django_db
def test_the_front_door_shows_the_mcp_url_discovery_and_each_clients_snippet(client):
    response = client.get("/")

    page = response.content.decode()
    assert response.status_code == 200
    assert '<pre id="mcp-url"><code>http://127.0.0.1:8000/mcp</code></pre>' in page
    assert "claude mcp add --transport http muster http://127.0.0.1:8000/mcp" in page
    assert "http://127.0.0.1:8000/.well-known/oauth-authorization-server" in page
    assert "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp" in page
    assert 'href="/admin/"' in page and 'href="/account"' in page
    assert "only reachable from this computer" in page


@pytest.mark.django_db
def test_the_front_door_uses_the_server_name_and_a_public_base_url(client, named):
    page = client.get("/").content.decode()

    assert "<title>Connect your MCP client · Acme MCP</title>" in page
    assert "claude mcp add --transport http acme-mcp https://mcp.acme.example/mcp" in page
    assert "only reachable from this computer" not in page


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["trusted_public_registration_schemes", "allowed_redirect_schemes"])
def test_the_front_door_warns_about_cursors_scheme_until_the_server_accepts_it(client, settings, key):
    warning = "Cursor returns to <code>cursor://</code>"
    assert warning in client.get("/").content.decode()

    settings.MUSTER_CONFIG = dataclasses.replace(settings.MUSTER_CONFIG, **{key: ("cursor",)})

    assert warning not in client.get("/").content.decode()


@pytest.mark.django_db
def test_the_front_door_takes_no_posts(client):
    assert client.post("/").status_code == 405
    assert client.head("/").status_code == 200


@pytest.mark.django_db
def test_admin_without_its_slash_redirects_to_the_admin(client):
    response = client.get("/admin")

    assert response.status_code == 302
    assert response["Location"] == "/admin/"


@pytest.mark.django_db
def test_the_icon_is_served_where_browsers_look_and_may_be_cached(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert response["Cache-Control"] == "public, max-age=86400"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an ICO file


# --- the server's name ---


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["/oauth/login", "/", "/no/such/page"])
def test_every_page_names_the_server(client, named, page):
    assert "Acme MCP" in client.get(page).content.decode()


@pytest.mark.django_db
def test_without_a_name_pages_show_the_host_people_see_in_the_address_bar(client):
    assert "Sign in to 127.0.0.1:8000" in client.get("/oauth/login").content.decode()


@pytest.mark.django_db
def test_the_admin_is_headed_with_the_server_name(admin_client):
    assert "127.0.0.1:8000 administration" in admin_client.get("/admin/").content.decode()


def test_the_server_name_is_trimmed():
    assert load_config({"MUSTER_SERVER_NAME": "  Acme MCP "}).display_name == "Acme MCP"


@pytest.mark.parametrize("name", ["x" * 81, "Acme\nMCP", "Acme\x1b[31m"])
def test_a_server_name_too_long_or_with_control_characters_is_refused(name):
    with pytest.raises(ConfigError, match=r"^serverName: must be at most 80 printable characters"):
        load_config({"MUSTER_SERVER_NAME": name})


def test_the_default_name_is_the_base_urls_host_and_port():
    assert Config().display_name == "127.0.0.1:8000"


# --- error pages ---


@pytest.mark.django_db
def test_an_unknown_address_is_a_page_not_found_with_a_way_back(client):
    response = client.get("/no/such/page")

    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
    assert 'href="/"' in response.content.decode()


def failing_view(request):
    raise RuntimeError("a bug")


urlpatterns = [path("boom", failing_view)]


@pytest.mark.django_db
@pytest.mark.urls("tests.test_pages")
def test_a_server_error_is_a_plain_page_without_a_trace(caplog):
    browser = Client(raise_request_exception=False)

    response = browser.get("/boom")

    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong on the server" in page
    assert "RuntimeError" not in page and "Traceback" not in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("referer", "back"),
    [
        ("http://testserver/oauth/login?next=/account", "/oauth/login?next=/account"),
        ("https://attacker.example/form", "/"),
        (None, "/"),
    ],
)
def test_a_form_failing_the_csrf_check_says_so_and_goes_back_only_to_this_site(referer, back):
    browser = Client(enforce_csrf_checks=True)
    headers = {"HTTP_ACCEPT": "text/html", **({"HTTP_REFERER": referer} if referer else {})}

    response = browser.post("/oauth/login", {"username": "a", "password": "b"}, **headers)

    assert response.status_code == 403
    page = response.content.decode()
    assert "This form has expired or did not come from this site" in page
    expected = referer if referer and referer.startswith("http://testserver") else back
    assert f'<a href="{expected}">' in page


@pytest.mark.django_db
def test_a_csrf_failure_answers_json_to_a_program():
    response = Client(enforce_csrf_checks=True).post("/oauth/login", {"username": "a"})

    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


# --- every string people read is marked for translation ---


def untranslated_text(template: str) -> list[str]:
    """Words on the page that no {% translate %} or {% blocktranslate %} covers (code and names aside)."""
    text = re.sub(r"{%\s*blocktranslate.*?{%\s*endblocktranslate\s*%}", " ", template, flags=re.S)
    text = re.sub(r"<(style|pre|code)\b.*?</\1>", " ", text, flags=re.S)
    text = re.sub(r"{%\s*block page_class\s*%}.*?{%\s*endblock\s*%}", " ", text)  # a CSS class, not prose
    text = re.sub(r"{%.*?%}|{{.*?}}|{#.*?#}|<[^>]*>|&[a-z]+;", " ", text, flags=re.S)
    for name in PROPER_NAMES:
        text = text.replace(name, " ")
    return [word for word in text.split() if re.search(r"[A-Za-z]", word)]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_every_string_on_our_pages_is_marked_for_translation(template):
    assert untranslated_text(template.read_text()) == []


def test_the_translation_check_finds_a_bare_string():
    assert untranslated_text("<p>Hello {{ name }}</p>{% translate 'Bye' %}") == ["Hello"]
