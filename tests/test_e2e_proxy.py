"""End to end through `mcp.upstreamUrl`: the real gateway streaming to an MCP server in another process."""

import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from tests.servers.asgi_process import serving
from tests.servers.processes import free_port
from tests.servers.sdk_client import SdkUser, texts
from tests.servers.site import Site, signed_in_tokens

pytestmark = [pytest.mark.e2e]

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
PING = b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}'


def gateway_to(upstream_url: str, workdir: Path) -> Site:
    return Site(workdir, extra_env={"MUSTER_MCP_UPSTREAM_URL": upstream_url, "MUSTER_MCP_UPSTREAM_TIMEOUT": "3s"})


@pytest.fixture(scope="module")
def demo_upstream() -> Iterator[str]:
    """The demo MCP app served on its own, with no gateway in front: the server muster protects."""
    with serving("mcp_gateway.demo:app", ready_path="/") as base_url:
        yield f"{base_url}/mcp"


def test_sdk_client_works_through_the_upstream_proxy(demo_upstream: str, tmp_path: Path) -> None:
    with gateway_to(demo_upstream, tmp_path) as site:
        user = SdkUser(site, site.create_public_client("E2E proxy client"))

        async def session() -> tuple[set[str], list[str]]:
            async with user.http() as http, user.connect(http) as client:
                listed = await client.list_tools()
                return {tool.name for tool in listed.tools}, texts(await client.call_tool("echo", {"text": "hi"}))

        try:
            tools, echoed = anyio.run(session)
        finally:
            user.browser.close()

    assert user.browser.sign_ins == 1
    assert {"whoami", "echo"} <= tools
    assert echoed == ["hi"]


def test_sse_events_arrive_through_the_gateway_before_the_stream_ends(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    with (
        serving("tests.servers.upstream_mcp:app", {"UPSTREAM_EVENTS_LOG": str(log)}) as upstream,
        gateway_to(f"{upstream}/sse?events=3&delay=0.6&tag=e2e", tmp_path / "site") as site,
    ):
        token = signed_in_tokens(site, site.create_public_client())["access_token"]
        arrivals: list[float] = []
        started = time.monotonic()
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
        with httpx.stream("POST", f"{site.base_url}/mcp", content=PING, headers=headers, timeout=10) as answer:
            assert answer.status_code == 200
            arrivals.extend(time.monotonic() - started for chunk in answer.iter_raw() if chunk)

    # Produced 0.6 s apart: held back until the stream ended, they would arrive together (however loaded the
    # machine, which only delays the first one's arrival), so a spread of a whole delay shows they were passed on.
    assert arrivals[-1] - arrivals[0] >= 0.6, f"the first event waited for the stream: {arrivals}"
    assert arrivals[-1] >= 1.1, f"the events did not come as produced: {arrivals}"


def test_an_unreachable_upstream_is_a_clear_502(tmp_path: Path) -> None:
    with gateway_to(f"http://127.0.0.1:{free_port()}/mcp", tmp_path) as site:
        token = signed_in_tokens(site, site.create_public_client())["access_token"]
        started = time.monotonic()
        answer = httpx.post(
            f"{site.base_url}/mcp", content=PING, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
        )

    assert answer.status_code == 502
    assert answer.json()["error"] == "bad_gateway"
    assert time.monotonic() - started < 3
