"""The real server, two workers and a Redis of the test's own: revocations hold while Redis is paused, streams end."""

import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from tests.servers.site import Site, signed_in_tokens
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}).encode()
IDENTITY_APP = {"MUSTER_MCP_APP": "tests.servers.identity_app:app"}


def mcp_status(site: Site, token: str) -> int:
    """One /mcp call on a new connection, so that either worker may answer it."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return httpx.post(f"{site.base_url}/mcp", headers=headers, content=INITIALIZE, timeout=30).status_code


def revoke(site: Site, client_id: str, token: str) -> httpx.Response:
    return httpx.post(f"{site.base_url}/oauth/revoke", data={"token": token, "client_id": client_id}, timeout=60)


def test_a_token_revoked_while_redis_is_paused_is_refused_by_both_workers_once_it_answers_again(
    tmp_path: Path, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, redis_process = own_redis
    with Site(tmp_path / "site", redis_url=url, workers=2, extra_env=IDENTITY_APP) as site:
        client_id = site.create_public_client()
        token = signed_in_tokens(site, client_id)["access_token"]
        assert [mcp_status(site, token) for _ in range(10)] == [200] * 10  # in Redis and in both workers

        os.kill(redis_process.pid, signal.SIGSTOP)
        try:
            revoked = revoke(site, client_id, token)
        finally:
            os.kill(redis_process.pid, signal.SIGCONT)

        assert revoked.status_code == 200
        assert eventually(lambda: mcp_status(site, token) == 401, seconds=10)
        assert [mcp_status(site, token) for _ in range(20)] == [401] * 20


def test_an_open_stream_ends_when_its_token_is_revoked(
    tmp_path: Path, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, _ = own_redis
    with Site(tmp_path / "site", redis_url=url, workers=2, extra_env=IDENTITY_APP) as site:
        client_id = site.create_public_client()
        token = signed_in_tokens(site, client_id)["access_token"]
        streaming = threading.Event()
        ended = threading.Event()

        def listen() -> None:
            headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
            with httpx.stream("GET", f"{site.base_url}/mcp", headers=headers, timeout=30) as answer:
                for _ in answer.iter_raw():
                    streaming.set()
            ended.set()  # a clean end of body: iter_raw would raise on a cut connection

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert streaming.wait(10), "the stream never started"

        assert revoke(site, client_id, token).status_code == 200

        assert ended.wait(10), "the stream outlived its token"
        listener.join(5)
