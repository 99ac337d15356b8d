"""A Redis server of a test's own on a free port: the test may stop, kill or flush it without touching anyone's."""

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import redis

from tests.servers.optional import unavailable
from tests.servers.processes import free_port, start_until_ready, stop_process_group

START_TIMEOUT_SECONDS = 10.0


@contextmanager
def own_redis(directory: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """redis-server keeping nothing on disk, once it answers PING; yields (its URL, its process)."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    with _running(f"redis://127.0.0.1:{free_port()}/0", directory) as running:
        yield running


@contextmanager
def restarted(url: str, directory: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A fresh, empty redis-server on the port of `url` (one this test killed), as after an outage."""
    with _running(url, directory) as (_, process):
        yield process


@contextmanager
def _running(url: str, directory: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    def not_ready() -> str | None:
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5) as client:
                client.ping()
        except redis.RedisError as exc:
            return repr(exc)
        return None

    port = str(urlsplit(url).port)
    command = ["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = start_until_ready(
        [*command, "--dir", str(directory)],
        env=os.environ,
        output=subprocess.DEVNULL,
        errors=subprocess.DEVNULL,
        ready=not_ready,
        timeout=START_TIMEOUT_SECONDS,
        failure=lambda reason: RuntimeError(f"the test's redis-server {reason}"),
    )
    try:
        yield url, process
    finally:
        stop_process_group(process)
