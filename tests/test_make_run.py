"""`make run` as a new user types it, on a port of its own: what it prints, and a base URL that works from anywhere."""

import os
import secrets
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.servers.processes import PROJECT_DIR, free_port, http_problem, start_until_ready, stop_process_group

pytestmark = [pytest.mark.e2e]

START_TIMEOUT_SECONDS = 90.0


@pytest.fixture
def installed() -> None:
    """`make run` would otherwise begin with a full install; the suite runs after `make install` (make test)."""
    if subprocess.run(["make", "-q", "install"], cwd=PROJECT_DIR, check=False).returncode != 0:
        pytest.skip("the virtualenv is not installed and current (run `make install` first)")


def make_run(tmp_path: Path, *arguments: str) -> tuple[str, int]:
    """`make run` with the arguments, on a fresh database, until /health answers; what it printed, and its port."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("MUSTER_")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'site.sqlite3'}",
        MUSTER_SECRET_KEY=secrets.token_urlsafe(48),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("REDIS_URL", None)
    log = tmp_path / "make-run.log"
    with log.open("wb") as output:
        process = start_until_ready(
            ["make", "--no-print-directory", "run", *arguments, f"PORT={port}"],
            env=env,
            output=output,
            errors=subprocess.STDOUT,
            ready=lambda: http_problem(f"http://127.0.0.1:{port}/health", lambda answer: answer.status_code == 200),
            timeout=START_TIMEOUT_SECONDS,
            failure=lambda reason: AssertionError(f"make run {reason}:\n{log.read_text()}"),
        )
        try:
            issuer = httpx.get(f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server").json()["issuer"]
        finally:
            os.killpg(process.pid, signal.SIGTERM)  # make and uvicorn alike
            stop_process_group(process)
    return log.read_text() + f"\nissuer={issuer}", port


def test_make_run_on_all_interfaces_advertises_loopback_and_says_so(installed, tmp_path: Path) -> None:
    printed, port = make_run(tmp_path, "HOST=0.0.0.0")

    assert f"note: Listening on 0.0.0.0, advertising http://127.0.0.1:{port}" in printed
    assert "set MUSTER_BASE_URL to the public https URL" in printed
    assert f"issuer=http://127.0.0.1:{port}" in printed


def test_make_run_ends_its_start_with_where_everything_is(installed, tmp_path: Path) -> None:
    printed, port = make_run(tmp_path)

    assert "note:" not in printed
    assert "Created the superuser 'admin' with password: " in printed
    assert f"MCP URL     http://127.0.0.1:{port}/mcp" in printed
    assert f"Admin       http://127.0.0.1:{port}/admin/" in printed
    assert f"claude mcp add --transport http muster http://127.0.0.1:{port}/mcp" in printed
