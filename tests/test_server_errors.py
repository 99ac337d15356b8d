"""Failures on our side: a database or Redis outage is a 503 with Retry-After, a crash a 500; JSON for programs and
API endpoints, our page for browsers; never Django's own error page."""

import pytest
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import InterfaceError, OperationalError, ProgrammingError
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from infra.outages import RETRY_AFTER_SECONDS
from muster_project import urls as site_urls
from oauth_server import server_errors

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.test_server_errors")]

FAILURES: dict[str, Exception] = {
    "database": OperationalError("connection refused"),
    "database-connection-closed": InterfaceError("connection already closed"),
    "redis": RedisConnectionError("connection refused"),
    "redis-timeout": RedisTimeoutError("timed out"),
    "django-redis": ConnectionInterrupted(None),
    "bug": RuntimeError("a bug"),
    "bad-query": ProgrammingError("no such column"),
}
OUTAGES = ["database", "database-connection-closed", "redis", "redis-timeout", "django-redis"]
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
API = {"Accept": "application/json"}


def failing(request: HttpRequest) -> HttpResponse:
    raise FAILURES[request.GET["with"]]


def fine(request: HttpRequest) -> HttpResponse:
    request.session["seen"] = True  # the session middleware saves it on the way out
    return HttpResponse("fine")


urlpatterns = [path("account", failing), path("oauth/token", failing), path("fine", fine)]
handler500 = site_urls.handler500


def client() -> Client:
    return Client(raise_request_exception=False)


def assert_unavailable_json(response: HttpResponse) -> None:
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "temporarily_unavailable"
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)


def test_the_site_answers_its_failures_with_our_handler():
    assert site_urls.handler500 is server_errors.server_error


@pytest.mark.parametrize("failure", OUTAGES)
def test_an_outage_is_a_json_503_with_retry_after_for_a_program(failure):
    assert_unavailable_json(client().get(f"/account?with={failure}", headers=API))


@pytest.mark.parametrize("failure", OUTAGES)
def test_an_outage_is_our_503_page_with_retry_after_for_a_browser(failure):
    response = client().get(f"/account?with={failure}", headers=BROWSER)

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert "briefly unavailable" in response.content.decode()
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)


def test_an_api_endpoint_answers_its_outage_in_json_even_to_a_browser():
    assert_unavailable_json(client().post("/oauth/token?with=database", headers=BROWSER))


def test_an_outage_outside_a_view_is_a_503_too(monkeypatch):
    def save_fails(self, request, response):
        raise OperationalError("connection refused")

    monkeypatch.setattr(SessionMiddleware, "process_response", save_fails)

    assert_unavailable_json(client().get("/fine", headers=API))


@pytest.mark.parametrize("failure", ["bug", "bad-query"])
def test_a_crash_is_a_json_500_for_a_program_never_an_outage(failure):
    response = client().post(f"/oauth/token?with={failure}", headers=API)

    assert response.status_code == 500
    assert response.json()["error"] == "server_error"
    assert "Retry-After" not in response


def test_a_crash_is_our_500_page_for_a_browser():
    response = client().get("/account?with=bug", headers=BROWSER)

    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong on the server" in page
    assert "RuntimeError" not in page and "Traceback" not in page
