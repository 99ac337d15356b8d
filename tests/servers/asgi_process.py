"""Serves any ASGI app of this project with uvicorn on a free loopback port, for as long as a test needs it."""

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from tests.servers.processes import free_port, http_problem, start_until_ready, stop_process_group

UVICORN = [sys.executable, "-m", "uvicorn"]
START_TIMEOUT_SECONDS = 20.0


@contextmanager
def serving(app: str, env: Mapping[str, str] | None = None, ready_path: str = "/ready") -> Iterator[str]:
    """Start `uvicorn <app>`, wait until it answers any HTTP on `ready_path`, yield its base URL, stop it."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    process = start_until_ready(
        [*UVICORN, app, "--host", "127.0.0.1", "--port", str(port), "--lifespan", "auto"],
        env={**os.environ, **(env or {})},
        output=subprocess.DEVNULL,
        errors=subprocess.DEVNULL,
        ready=lambda: http_problem(base_url + ready_path, lambda answer: True),
        timeout=START_TIMEOUT_SECONDS,
        failure=lambda reason: AssertionError(f"{app} {reason}"),
    )
    try:
        yield base_url
    finally:
        stop_process_group(process)
