"""The official MCP SDK as a test client: OAuthClientProvider with a headless browser that signs in and allows."""

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import anyio
import anyio.to_thread
import httpx
import httpx2
from mcp.client import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from tests.servers.processes import free_port
from tests.servers.site import Site
from tests.support.flow import Transport, allow, at_provider, with_password

SDK_TIMEOUT_SECONDS = 60.0


class MemoryTokenStorage:
    """The SDK's `TokenStorage`: the client (pre-registered, or whatever the SDK registers) and every token."""

    def __init__(self, client_info: OAuthClientInformationFull | None = None) -> None:
        self.client_info = client_info
        self.issued: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.issued[-1] if self.issued else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.issued.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def _without_port(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))


class HeadlessBrowser:
    """The user's browser: the SDK hands it the authorization URL, it signs in, allows, and captures the redirect."""

    def __init__(self, site: Site, redirect_uri: str, provider_sign_in: Callable[[str], str] | None = None) -> None:
        self.site = site
        self.redirect_uri = redirect_uri
        self.provider_sign_in = provider_sign_in
        self.http = httpx.Client(follow_redirects=False, timeout=30.0)
        self.authorization_urls: list[str] = []
        self.sign_ins = 0
        self._result: AuthorizationCodeResult | None = None

    def close(self) -> None:
        self.http.close()

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorization_urls.append(authorization_url)
        self._result = await anyio.to_thread.run_sync(self._authorize, authorization_url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        result, self._result = self._result, None
        assert result is not None, "the callback came without a redirect"
        return result

    def _authorize(self, url: str) -> AuthorizationCodeResult:
        """GET authorize -> sign in (if asked) -> consent -> the redirect to the client, as a browser would."""
        location = allow(self.site.over(self.http), url, self._sign_in)
        assert _without_port(location) == _without_port(self.redirect_uri), location
        assert urlsplit(location).port == urlsplit(self.redirect_uri).port, location
        query = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
        assert "code" in query, f"no code in {location}"
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    def _sign_in(self, transport: Transport, login_url: str) -> str:
        """Locally with the site's user, or at the identity provider; returns where the browser lands."""
        self.sign_ins += 1
        if self.provider_sign_in is not None:
            return at_provider(self.provider_sign_in)(transport, login_url)
        return with_password(self.site.username, self.site.password)(transport, login_url)


class SdkUser:
    """One user connecting to /mcp through the SDK's OAuth provider.

    With `client_id` the client is pre-registered; with `client_metadata_url` it is a CIMD client; with
    neither the SDK registers one itself (DCR).
    """

    def __init__(
        self,
        site: Site,
        client_id: str | None = None,
        client_metadata_url: str | None = None,
        provider_sign_in: Callable[[str], str] | None = None,
    ) -> None:
        # Loopback redirect URIs match on any port, so a client registered without one may use a random port.
        self.redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
        self.browser = HeadlessBrowser(site, self.redirect_uri, provider_sign_in)
        methods = {"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]}
        registered = (
            OAuthClientInformationFull(client_id=client_id, redirect_uris=[AnyUrl(self.redirect_uri)], **methods)
            if client_id
            else None
        )
        self.storage = MemoryTokenStorage(registered)
        self.provider = OAuthClientProvider(
            server_url=f"{site.base_url}/mcp",
            client_metadata=OAuthClientMetadata(
                client_name="E2E SDK client", redirect_uris=[AnyUrl(self.redirect_uri)], **methods
            ),
            storage=self.storage,
            redirect_handler=self.browser.redirect_handler,
            callback_handler=self.browser.callback_handler,
            client_metadata_url=client_metadata_url,
        )
        self.url = f"{site.base_url}/mcp"

    def connect(self, http: httpx2.AsyncClient) -> Client:
        """An MCP client over Streamable HTTP using the initialize handshake (as 2025-06-18 clients do)."""
        return Client(streamable_http_client(self.url, http_client=http), mode="legacy")

    def http(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(auth=self.provider, timeout=httpx2.Timeout(SDK_TIMEOUT_SECONDS))


def structured(result: Any) -> Any:
    assert not result.is_error, result
    return result.structured_content


def texts(result: Any) -> list[str]:
    assert not result.is_error, result
    return [block.text for block in result.content if block.type == "text"]
