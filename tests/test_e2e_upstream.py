"""End to end with a real OIDC provider process: the SDK client signs in upstream; degraded start; two workers."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest

from tests.servers.asgi_process import serving
from tests.servers.oidc_provider import OidcProvider
from tests.servers.processes import free_port
from tests.servers.sdk_client import SdkUser, structured
from tests.servers.site import Site, production_site, refresh_all_at_once
from tests.support.flow import at_provider, exchange, issue_code
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e]

SUBJECT = "carol-at-idp"
RECOVERY_TIMEOUT_SECONDS = 45.0
DEGRADED_BODY = {"error": "service_unavailable", "error_description": "OIDC discovery in progress, please retry"}


def provider_env(issuer: str) -> dict[str, str]:
    return {
        "MUSTER_PROVIDER": "oidc",
        "MUSTER_OIDC_ISSUER_URL": issuer,
        "MUSTER_OIDC_CLIENT_ID": "muster-e2e",
        "MUSTER_OIDC_CLIENT_SECRET": "muster-e2e-secret",
        "MUSTER_OIDC_ALLOW_PRIVATE_IP_OIDC": "true",
    }


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider() as running:
        running.set_user(SUBJECT, {"email": "carol@example.com", "email_verified": True, "groups": ["ops"]})
        yield running


def test_the_sdk_client_signs_in_at_the_provider_and_whoami_shows_the_upstream_subject(
    provider: OidcProvider, tmp_path: Path
) -> None:
    with Site(tmp_path, extra_env=provider_env(provider.issuer)) as site:
        user = SdkUser(site, provider_sign_in=lambda url: provider.sign_in(url, SUBJECT))

        async def session() -> dict[str, Any]:
            async with user.http() as http, user.connect(http) as client:
                return dict(structured(await client.call_tool("whoami")))

        try:
            whoami = anyio.run(session)
        finally:
            user.browser.close()

    assert whoami["subject"] == SUBJECT
    assert user.browser.sign_ins == 1
    assert provider.counters()["authorization_code"] >= 1


def test_a_site_started_while_the_provider_is_down_serves_degraded_then_recovers_without_restart(
    tmp_path: Path, http: httpx.Client
) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    with Site(tmp_path, extra_env=provider_env(issuer), healthy_status="degraded") as site:
        health = http.get(f"{site.base_url}/health")
        assert health.json() == {"status": "degraded", "reason": "oidc-discovery-pending"}
        for method, path in (
            ("POST", "/mcp"),
            ("GET", "/.well-known/oauth-authorization-server"),
            ("POST", "/oauth/token"),
        ):
            refused = http.request(method, site.base_url + path)
            assert refused.status_code == 503, (path, refused.text)
            assert refused.headers["retry-after"] == "30"
            assert refused.json() == DEGRADED_BODY

        with OidcProvider(port=port) as provider:
            provider.set_user(SUBJECT, {"email": "carol@example.com", "email_verified": True})
            assert wait_for_health(http, site, "ok"), site.log_tail()
            metadata = http.get(f"{site.base_url}/.well-known/oauth-authorization-server")
            assert metadata.status_code == 200
            client_id = site.create_public_client()
            code, verifier, _ = issue_code(
                site.over(http), client_id, login=at_provider(lambda url: provider.sign_in(url, SUBJECT))
            )
            assert exchange(site.over(http), client_id, code, verifier).status_code == 200


def wait_for_health(http: httpx.Client, site: Site, status: str) -> bool:
    """Discovery retries 1 s, 2 s, 4 s … (at most 30 s apart), so recovery comes within about half a minute."""
    return eventually(
        lambda: http.get(f"{site.base_url}/health").json().get("status") == status, RECOVERY_TIMEOUT_SECONDS
    )


@pytest.mark.postgres
@pytest.mark.redis
def test_concurrent_refreshes_across_two_workers_refresh_at_the_provider_once(
    provider: OidcProvider, tmp_path: Path, http: httpx.Client
) -> None:
    with production_site(tmp_path, extra_env=provider_env(provider.issuer)) as site:
        client_id = site.create_public_client()
        code, verifier, _ = issue_code(
            site.over(http), client_id, login=at_provider(lambda url: provider.sign_in(url, SUBJECT))
        )
        first = exchange(site.over(http), client_id, code, verifier).json()
        site.manage(
            "shell",
            "--no-imports",
            "-c",
            "from datetime import timedelta; from django.utils import timezone; "
            "from oauth_server.models import UpstreamSession as S; "
            "S.objects.update(expires_at=timezone.now() + timedelta(seconds=30))",
        )
        provider.reset_counters()

        answers = refresh_all_at_once(site, client_id, first["refresh_token"], 8)

    assert [answer.status_code for answer in answers] == [200] * 8, [answer.text for answer in answers]
    assert len({answer.json()["refresh_token"] for answer in answers}) == 1
    assert provider.counters()["refresh_token"] == 1


def test_the_upstream_id_token_travels_to_an_upstream_mcp_server_with_forward_id_token(
    provider: OidcProvider, tmp_path: Path, http: httpx.Client
) -> None:
    env = {**provider_env(provider.issuer), "MUSTER_MCP_FORWARD_ID_TOKEN": "true"}
    with serving("tests.servers.upstream_mcp:app") as upstream:
        env["MUSTER_MCP_UPSTREAM_URL"] = f"{upstream}/mcp"
        with Site(tmp_path, extra_env=env) as site:
            client_id = site.create_public_client()
            code, verifier, _ = issue_code(
                site.over(http), client_id, login=at_provider(lambda url: provider.sign_in(url, SUBJECT))
            )
            token = exchange(site.over(http), client_id, code, verifier).json()["access_token"]
            echoed = http.post(
                f"{site.base_url}/mcp",
                content=b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}',
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/json, text/event-stream",
                    "Content-Type": "application/json",
                },
            )

    assert echoed.status_code == 200, echoed.text
    sent = dict(echoed.json()["headers"])
    id_token = sent["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(id_token, options={"verify_signature": False})
    assert (claims["iss"], claims["sub"]) == (provider.issuer, SUBJECT)
    assert token not in sent["authorization"]
