"""A Redis server of a test's own on a free port: the test may stop, kill or flush it without touching anyone's."""

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.servers.optional import unavailable
from tests.servers.processes import free_port, start_until_ready, stop_process_group

START_TIMEOUT_SECONDS = 10.0


@contextmanager
def own_redis(directory: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """redis-server keeping nothing on disk, once it answers PING; yields (its URL, its process)."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    def not_ready() -> str | None:
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5) as client:
                client.ping()
        except redis.RedisError as exc:
            return repr(exc)
        return None

    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
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
