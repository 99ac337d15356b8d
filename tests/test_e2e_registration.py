"""End to end with the official MCP SDK client registering itself: once by DCR, once as a CIMD client."""

from collections.abc import Iterator

import anyio
import pytest

from tests.servers.https_documents import DocumentServer, serving_documents
from tests.servers.sdk_client import SdkUser, texts
from tests.servers.site import Site

pytestmark = [pytest.mark.e2e]


def echo_through(user: SdkUser) -> list[str]:
    async def session() -> list[str]:
        async with user.http() as http, user.connect(http) as client:
            return texts(await client.call_tool("echo", {"text": "registered"}))

    try:
        return anyio.run(session)
    finally:
        user.browser.close()


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocumentServer]:
    with serving_documents(tmp_path_factory.mktemp("cimd-documents")) as server:
        yield server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, documents: DocumentServer) -> Iterator[Site]:
    """The embedded default (open registration on loopback), trusting the local document server."""
    local_documents = {"MUSTER_ALLOW_PRIVATE_IP_CLIENT_METADATA": "true", "MUSTER_EXTRA_CA_FILE": documents.ca_file}
    with Site(tmp_path_factory.mktemp("site-registration"), extra_env=local_documents) as running:
        yield running


def test_the_sdk_client_registers_by_dcr_and_calls_a_tool(site: Site) -> None:
    user = SdkUser(site)

    assert echo_through(user) == ["registered"]
    assert user.storage.client_info is not None
    assert user.storage.client_info.client_id
    assert user.browser.sign_ins == 1


def test_the_sdk_client_uses_its_metadata_document_and_calls_a_tool(site: Site, documents: DocumentServer) -> None:
    url = documents.url("/oauth/e2e-client.json")
    documents.publish(
        "/oauth/e2e-client.json",
        {
            "client_id": url,
            "client_name": "E2E CIMD client",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
    )
    user = SdkUser(site, client_metadata_url=url)

    assert echo_through(user) == ["registered"]
    assert user.browser.authorization_urls and f"client_id={url}" in user.browser.authorization_urls[0].replace(
        "%3A", ":"
    ).replace("%2F", "/")
    assert documents.fetches("/oauth/e2e-client.json") >= 1


def test_the_metadata_advertises_registration_and_metadata_documents(site: Site) -> None:
    import httpx

    metadata = httpx.get(f"{site.base_url}/.well-known/oauth-authorization-server").json()

    assert metadata["registration_endpoint"] == f"{site.base_url}/oauth/register"
    assert metadata["client_id_metadata_document_supported"] is True
