"""Runs the real site under uvicorn on a free port and drives it over HTTP like a browser and a client."""

import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import psycopg
import redis
from psycopg import sql

from tests.conftest import REDIRECT_URI, pkce_pair
from tests.servers.optional import unavailable
from tests.servers.processes import PROJECT_DIR, free_port, http_problem, start_until_ready, stop_process_group

# The shared services: those DATABASE_URL and REDIS_URL name, else CI's on loopback. Tests only create databases
# of their own there (dropped after) and only write keys under a prefix of their own (deleted after).
_DATABASE_URL = os.environ.get("DATABASE_URL", "")
POSTGRES_ADMIN_URL = (
    _DATABASE_URL
    if _DATABASE_URL.startswith(("postgres://", "postgresql://"))
    else "postgres://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
HEALTH_TIMEOUT_SECONDS = 30.0
SIGN_OUT_PATH = "/oauth/logout"
# Inherited settings that would point the child at someone else's configuration, database or cache.
_NOT_INHERITED = ("MUSTER_CONFIG", "DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")


class SiteError(RuntimeError):
    """The site could not be set up, started or asked something."""


def site_env(
    base_url: str,
    database_url: str,
    *,
    redis_url: str | None = None,
    key_prefix: str | None = None,
    grace: str | None = None,
) -> dict[str, str]:
    """The child environment: ours minus any inherited MUSTER_*/database/cache settings, plus the site's."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _NOT_INHERITED and not name.startswith("MUSTER_")
    }
    env.update(
        MUSTER_BASE_URL=base_url,
        DATABASE_URL=database_url,
        MUSTER_SECRET_KEY=secrets.token_urlsafe(48),
        MUSTER_STORAGE_VALKEY_KEY_PREFIX=key_prefix or f"e2e-{secrets.token_hex(6)}:",
        PYTHONUNBUFFERED="1",
    )
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    if grace is not None:
        env["MUSTER_REFRESH_GRACE_PERIOD"] = grace
    return env


def manage_command(*args: str) -> list[str]:
    return [sys.executable, str(PROJECT_DIR / "manage.py"), *args]


def uvicorn_command(port: int, workers: int = 1) -> list[str]:
    command = [sys.executable, "-m", "uvicorn", "muster_project.asgi:application"]
    command += [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "off",
        "--timeout-graceful-shutdown",
        "5",
        "--no-proxy-headers",
    ]
    return command + (["--workers", str(workers)] if workers > 1 else [])


class Site:
    """The site on a free port with its own database and a signed-up user; use it as a context manager."""

    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str | None = None,
        redis_url: str | None = None,
        grace: str | None = None,
        workers: int = 1,
        username: str = "alice",
        password: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        healthy_status: str = "ok",
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.healthy_status = healthy_status  # "degraded": started, but its provider is not discovered yet
        self.workdir = workdir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.username = username
        self.password = password or secrets.token_urlsafe(18)
        self.key_prefix = f"e2e-{secrets.token_hex(6)}:"
        self.env = site_env(
            self.base_url,
            database_url or f"sqlite:///{workdir / 'site.sqlite3'}",
            redis_url=redis_url,
            key_prefix=self.key_prefix,
            grace=grace,
        )
        self.env["PROMETHEUS_MULTIPROC_DIR"] = str(workdir / "prometheus")
        self.env.update(extra_env or {})
        self.log_path = workdir / "uvicorn.log"
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.manage("migrate", "--noinput")
        self.manage(
            "createsuperuser",
            "--noinput",
            "--username",
            self.username,
            "--email",
            f"{self.username}@example.com",
            extra_env={"DJANGO_SUPERUSER_PASSWORD": self.password},
        )
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def manage(self, *args: str, extra_env: Mapping[str, str] | None = None) -> str:
        """Run manage.py with the site's environment; its stdout, or SiteError with its stderr."""
        result = subprocess.run(
            manage_command(*args),
            cwd=PROJECT_DIR,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise SiteError(
                f"manage.py {' '.join(args)} exited with {result.returncode}:\n{result.stderr}{result.stdout}"
            )
        return result.stdout

    def start(self) -> None:
        """uvicorn, once /health answers the expected status."""
        self._log = self.log_path.open("ab")
        try:
            self._process = start_until_ready(
                uvicorn_command(self.port, self.workers),
                env=self.env,
                output=self._log,
                errors=subprocess.STDOUT,
                ready=lambda: http_problem(f"{self.base_url}/health", self._healthy),
                timeout=HEALTH_TIMEOUT_SECONDS,
                failure=lambda reason: SiteError(f"uvicorn {reason}:\n{self.log_tail()}"),
            )
        except BaseException:
            self.stop()
            raise

    def _healthy(self, answer: httpx.Response) -> bool:
        return answer.status_code == 200 and answer.json().get("status") == self.healthy_status

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the server's own process group (it and its workers) after 10 s."""
        process, self._process = self._process, None
        if process is not None:
            stop_process_group(process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    # --- things done through manage.py ---

    def create_public_client(self, name: str = "E2E client") -> str:
        created = _json(
            self.manage("createclient", "--name", name, "--redirect-uri", REDIRECT_URI, "--public", "--json")
        )
        assert created["client_type"] == "public", created
        return str(created["client_id"])

    def create_user(self, username: str) -> str:
        """An ordinary (not staff) local account; returns its password."""
        password = secrets.token_urlsafe(18)
        code = (
            "import os; from django.contrib.auth import get_user_model; "
            "get_user_model().objects.create_user(os.environ['NEW_USERNAME'], password=os.environ['NEW_PASSWORD'])"
        )
        self.manage("shell", "--no-imports", "-c", code, extra_env={"NEW_USERNAME": username, "NEW_PASSWORD": password})
        return password

    def family_of(self, refresh_token: str) -> str:
        """The token family (a UUID) of a refresh token, as the account page and the admin name it."""
        checksum = hashlib.sha256(refresh_token.encode()).hexdigest()
        code = (
            "from oauth2_provider.models import RefreshToken as R; "
            f"print(R.objects.get(token_checksum='{checksum}').token_family)"
        )
        return self.manage("shell", "--no-imports", "-c", code).strip().splitlines()[-1]

    def family_size(self, refresh_token: str) -> int:
        """How many refresh tokens (one per rotation, plus the first) the token's family holds."""
        checksum = hashlib.sha256(refresh_token.encode()).hexdigest()
        code = (
            "from oauth2_provider.models import RefreshToken as R; "
            f"family = R.objects.get(token_checksum='{checksum}').token_family; "
            "print(R.objects.filter(token_family=family).count() if family else 0)"
        )
        return int(self.manage("shell", "--no-imports", "-c", code).strip().splitlines()[-1])


def _json(text: str) -> dict[str, Any]:
    value = json.loads(text)
    assert isinstance(value, dict), text
    return value


# --- a browser walking authorize -> sign-in -> consent ---


class _Forms(HTMLParser):
    """Every <form> of a page: its action and method, its inputs and its named submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append({**attributes, "inputs": {}, "buttons": []})
        elif self.forms and tag == "input" and attributes.get("name"):
            self.forms[-1]["inputs"][attributes["name"]] = attributes.get("value", "")
        elif self.forms and tag == "button":
            self.forms[-1]["buttons"].append((attributes.get("name", ""), attributes.get("value", "")))


def page_forms(html: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def authorize_path(client_id: str, challenge: str, state: str, redirect_uri: str = REDIRECT_URI) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": "mcp",
    }
    return "/oauth/authorize?" + urlencode(params)


def page_form(answer: httpx.Response, what: str) -> dict[str, Any]:
    """The page's one POST form, beside the consent page's sign-out button ("Not you?")."""
    forms = [
        form
        for form in page_forms(answer.text)
        if form.get("method", "get").lower() == "post" and form.get("action") != SIGN_OUT_PATH
    ]
    assert answer.status_code == 200 and len(forms) == 1, (
        f"expected the {what} page, got {answer.status_code}: {answer.text[:500]}"
    )
    return forms[0]


def sign_in_upstream(http: httpx.Client, login_url: str, provider_sign_in: Callable[[str], str]) -> str:
    """At /oauth/login the browser goes to the provider, signs in there and comes back; returns where it lands."""
    to_provider = http.get(login_url)
    assert to_provider.status_code == 302, f"login answered {to_provider.status_code}: {to_provider.text[:300]}"
    callback = provider_sign_in(to_provider.headers["location"])
    back = http.get(callback)
    assert back.status_code == 302, f"the callback answered {back.status_code}: {back.text[:300]}"
    return urljoin(callback, back.headers["location"])


def sign_in_and_authorize(
    http: httpx.Client,
    site: Site,
    client_id: str,
    username: str,
    password: str,
    *,
    state: str | None = None,
    provider_sign_in: Callable[[str], str] | None = None,
) -> tuple[str, str, dict[str, list[str]]]:
    """Authorize, sign in if asked (locally, or at the provider), allow; returns (code, verifier, redirect query)."""
    verifier, challenge = pkce_pair()
    url = site.base_url + authorize_path(client_id, challenge, state or secrets.token_urlsafe(32))
    answer = http.get(url)
    if answer.status_code == 302:
        login_url = urljoin(url, answer.headers["location"])
        assert urlsplit(login_url).path == "/oauth/login", f"authorize sent us to {login_url}"
        if provider_sign_in is not None:
            url = sign_in_upstream(http, login_url, provider_sign_in)
        else:
            login_page = http.get(login_url)
            login = page_form(login_page, "sign-in")
            fields = {**login["inputs"], "username": username, "password": password}
            signed_in = http.post(urljoin(login_url, login.get("action", "")), data=fields)
            assert signed_in.status_code == 302, f"sign-in failed: {signed_in.status_code} {signed_in.text[:500]}"
            url = urljoin(login_url, signed_in.headers["location"])
        assert urlsplit(url).path == "/oauth/authorize", f"sign-in returned to {url}, not to authorize"
        answer = http.get(url)
    consent = page_form(answer, "consent")
    assert ("allow", "Authorize") in consent["buttons"], consent
    allowed = {**consent["inputs"], "allow": "Authorize"}
    decided = http.post(urljoin(url, consent.get("action", "")), data=allowed)
    assert decided.status_code == 302, f"consent answered {decided.status_code}: {decided.text[:500]}"
    location = decided.headers["location"]
    parts = urlsplit(location)
    assert urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", "")) == REDIRECT_URI, location
    query = parse_qs(parts.query)
    assert "code" in query, f"no code in {location}"
    return query["code"][0], verifier, query


# --- the token endpoint, as a client ---


def exchange_code(
    http: httpx.Client, site: Site, client_id: str, code: str, verifier: str, redirect_uri: str = REDIRECT_URI
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
    }
    return http.post(f"{site.base_url}/oauth/token", data=data)


def refresh(http: httpx.Client, site: Site, client_id: str, refresh_token: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    return http.post(f"{site.base_url}/oauth/token", data=data)


def revoke(http: httpx.Client, site: Site, client_id: str, token: str) -> httpx.Response:
    return http.post(f"{site.base_url}/oauth/revoke", data={"token": token, "client_id": client_id})


def signed_in_tokens(site: Site, client_id: str) -> dict[str, Any]:
    """A fresh browser signs in and allows; the client exchanges the code. The token response body."""
    with httpx.Client(follow_redirects=False) as http:
        code, verifier, _ = sign_in_and_authorize(http, site, client_id, site.username, site.password)
        answer = exchange_code(http, site, client_id, code, verifier)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def refresh_all_at_once(site: Site, client_id: str, refresh_token: str, count: int) -> list[httpx.Response]:
    """`count` threads, each on its own open connection, post the same refresh token at the same moment."""
    barrier = threading.Barrier(count)
    answers: list[httpx.Response | BaseException] = [RuntimeError("no answer")] * count
    clients = [httpx.Client(follow_redirects=False, timeout=60.0) for _ in range(count)]

    def post(index: int) -> None:
        try:
            clients[index].get(f"{site.base_url}/health")  # connect before the start line
            barrier.wait(timeout=30)
            answers[index] = refresh(clients[index], site, client_id, refresh_token)
        except BaseException as exc:
            answers[index] = exc

    threads = [threading.Thread(target=post, args=(index,)) for index in range(count)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
    finally:
        for client in clients:
            client.close()
    failures = [answer for answer in answers if not isinstance(answer, httpx.Response)]
    assert not failures, f"{len(failures)} of {count} refreshes raised: {failures[0]!r}"
    return [answer for answer in answers if isinstance(answer, httpx.Response)]


# --- the optional services; skipped when absent, except on CI where their absence is a failure ---


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def require_postgres() -> str:
    """The admin URL of the local PostgreSQL, once it answers within 2 s."""
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=2):
            pass
    except psycopg.Error as exc:
        unavailable(f"PostgreSQL not reachable on {_host_port(POSTGRES_ADMIN_URL)}: {exc}")
    return POSTGRES_ADMIN_URL


def require_redis() -> str:
    """The URL of the local Redis/Valkey, once it answers PING within 2 s."""
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2) as client:
            client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis not reachable on {_host_port(REDIS_URL)}: {exc}")
    return REDIS_URL


@contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty database `e2e_<random>`, dropped (connections and all) afterwards; yields its URL."""
    name = f"e2e_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=2) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=2) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def delete_redis_keys(redis_url: str, prefix: str) -> None:
    """Remove what a server wrote under its own key prefix, and nothing else."""
    assert prefix, "an empty prefix would match every key"
    with redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2) as client:
        for key in client.scan_iter(match=prefix + "*", count=500):
            client.delete(key)


@contextmanager
def production_site(workdir: Path, **site_options: Any) -> Iterator[Site]:
    """The production shape: two workers sharing a fresh PostgreSQL database and Redis (skips without them)."""
    admin_url = require_postgres()
    redis_url = require_redis()
    with fresh_postgres_database(admin_url) as database_url:
        server = Site(workdir, database_url=database_url, redis_url=redis_url, workers=2, **site_options)
        try:
            with server:
                yield server
        finally:
            delete_redis_keys(redis_url, server.key_prefix)
