"""The /mcp route on the real server: exact path, challenges over HTTP, streams, and a prompt shutdown."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers.site import Site, signed_in_tokens

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with Site(tmp_path, extra_env={"MUSTER_MCP_APP": "tests.servers.identity_app:app"}) as running:
        yield running


def test_only_the_exact_mcp_path_is_the_endpoint(site: Site) -> None:
    assert httpx.post(f"{site.base_url}/mcp").status_code == 401
    trailing = httpx.post(f"{site.base_url}/mcp/")
    assert trailing.status_code == 404
    assert "location" not in trailing.headers


def test_the_challenge_points_at_the_protected_resource_metadata(site: Site) -> None:
    answer = httpx.post(f"{site.base_url}/mcp", content=b"{}")

    metadata_url = f"{site.base_url}/.well-known/oauth-protected-resource/mcp"
    assert answer.headers["www-authenticate"] == f'Bearer resource_metadata="{metadata_url}"'
    assert httpx.get(metadata_url).json()["resource"] == f"{site.base_url}/mcp"


def test_the_server_shuts_down_promptly_with_a_stream_open(site: Site) -> None:
    token = signed_in_tokens(site, site.create_public_client())["access_token"]
    events: list[bytes] = []
    stream_open = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        try:
            with httpx.stream("GET", f"{site.base_url}/mcp", headers=headers, timeout=30) as answer:
                for chunk in answer.iter_raw():
                    events.append(chunk)
                    stream_open.set()
        except httpx.HTTPError:
            pass

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert stream_open.wait(10), "the stream never started"

    started = time.monotonic()
    site.stop()
    stopped_after = time.monotonic() - started
    listener.join(5)

    assert stopped_after < 8, f"shutdown took {stopped_after:.1f} s with a stream open"
    assert not listener.is_alive()
    assert events[0].startswith(b"data: 0")
