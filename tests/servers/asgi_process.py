"""Serves any ASGI app of this project with uvicorn on a free loopback port, for as long as a test needs it."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

PROJECT_DIR = Path(__file__).resolve().parents[2]
UVICORN = [sys.executable, "-m", "uvicorn"]


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(app: str, env: Mapping[str, str] | None = None, ready_path: str = "/ready") -> Iterator[str]:
    """Start `uvicorn <app>`, wait until it answers any HTTP on `ready_path`, yield its base URL, stop it."""
    port = free_port()
    process = subprocess.Popen(
        [*UVICORN, app, "--host", "127.0.0.1", "--port", str(port), "--lifespan", "auto"],
        cwd=PROJECT_DIR,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"{app} exited before it answered"
            try:
                httpx.get(base_url + ready_path, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"{app} did not answer within 20 s"
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
