"""Runs the real site under uvicorn on a free port and drives it over HTTP like a browser and a client."""

import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx

from tests.servers.processes import PROJECT_DIR, free_port, http_problem, start_until_ready, stop_process_group
from tests.support.authorize import REDIRECT_URI
from tests.support.flow import OverHttp, refresh, tokens, with_password
from tests.support.services import (
    delete_redis_keys,
    fresh_postgres_database,
    require_postgres,
    require_redis,
    unique_prefix,
)

HEALTH_TIMEOUT_SECONDS = 30.0
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
        MUSTER_STORAGE_VALKEY_KEY_PREFIX=key_prefix or unique_prefix("e2e"),
        PYTHONUNBUFFERED="1",
    )
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    if grace is not None:
        env["MUSTER_REFRESH_GRACE_PERIOD"] = grace
    return env


def manage_command(*args: str) -> list[str]:
    return [sys.executable, str(PROJECT_DIR / "manage.py"), *args]


SITE_PROTOCOL = "muster_project.http_deadlines:DeadlineProtocol"  # the server block's deadlines and cap


def uvicorn_command(port: int, workers: int = 1) -> list[str]:
    command = [sys.executable, "-m", "uvicorn", "muster_project.asgi:application"]
    command += [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "off",
        "--no-proxy-headers",
        "--http",
        SITE_PROTOCOL,
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
        self.key_prefix = unique_prefix("e2e")
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

    def over(self, http: httpx.Client) -> OverHttp:
        """The flow driver's transport to this site through `http` (one browser's cookies, one client)."""
        return OverHttp(http, self.base_url)

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


# --- the flow, over HTTP ---


def signed_in_tokens(site: Site, client_id: str) -> dict[str, Any]:
    """A fresh browser signs in and allows; the client exchanges the code. The token response body."""
    with httpx.Client(follow_redirects=False) as http:
        return tokens(site.over(http), client_id, login=with_password(site.username, site.password))


def refresh_all_at_once(site: Site, client_id: str, refresh_token: str, count: int) -> list[httpx.Response]:
    """`count` threads, each on its own open connection, post the same refresh token at the same moment."""
    barrier = threading.Barrier(count)
    answers: list[httpx.Response | BaseException] = [RuntimeError("no answer")] * count
    clients = [httpx.Client(follow_redirects=False, timeout=60.0) for _ in range(count)]

    def post(index: int) -> None:
        try:
            clients[index].get(f"{site.base_url}/health")  # connect before the start line
            barrier.wait(timeout=30)
            answers[index] = refresh(site.over(clients[index]), client_id, refresh_token)
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
