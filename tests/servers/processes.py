"""Helper processes of the tests and benchmarks: each in its own process group, started until it answers."""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

PROJECT_DIR = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.05


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_problem(url: str, accept: Callable[[httpx.Response], bool]) -> str | None:
    """None when GET `url` answers as `accept` wants; otherwise what came back, or why nothing did."""
    try:
        answer = httpx.get(url, timeout=2.0)
    except httpx.TransportError as exc:
        return repr(exc)
    return None if accept(answer) else f"{answer.status_code} {answer.text[:200]}"


def start_until_ready(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    output: IO[bytes] | int,
    errors: IO[bytes] | int,
    ready: Callable[[], str | None],
    timeout: float,
    failure: Callable[[str], Exception],
) -> subprocess.Popen[bytes]:
    """Start `command` from the project folder in a new process group and poll `ready` (None once ready, else what
    is still wrong); if it exits first or `timeout` passes, stop the group and raise `failure(reason)`."""
    process = subprocess.Popen(
        list(command),
        cwd=PROJECT_DIR,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=errors,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if (code := process.poll()) is not None:
                raise failure(f"exited with {code} before it was ready")
            if (problem := ready()) is None:
                return process
            if time.monotonic() >= deadline:
                raise failure(f"not ready after {timeout:.0f} s ({problem})")
            time.sleep(POLL_SECONDS)
    except BaseException:
        stop_process_group(process)
        raise


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGTERM, then SIGKILL to the process's own group (it and its workers) when it has not ended in `timeout`."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
