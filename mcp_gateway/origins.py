"""Origin checks and CORS for /mcp: the Streamable HTTP DNS-rebinding defence, done here (no middleware runs)."""

from django.conf import settings

from infra.asgi import Send
from infra.errors import asgi_security_headers
from infra.urls import canonical_resource

ALLOW_METHODS = b"GET, POST, DELETE, OPTIONS"
ALLOW_HEADERS = b"Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID"
EXPOSE_HEADERS = b"Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate"


def _canonical(origin: str) -> str | None:
    try:
        return canonical_resource(origin)
    except ValueError:
        return None


def _listed(origin: str) -> bool:
    return _canonical(origin) in settings.MUSTER_CONFIG.allowed_origins


def is_allowed(origin: str) -> bool:
    """Same origin as the base URL, or listed in `allowedOrigins`."""
    return _canonical(origin) == canonical_resource(settings.MUSTER_CONFIG.base_url) or _listed(origin)


def cors_headers(origin: str | None) -> list[tuple[bytes, bytes]]:
    """Headers that let a listed browser origin read the answer."""
    if not origin or not _listed(origin):
        return []
    return [
        (b"access-control-allow-origin", origin.encode()),
        (b"access-control-expose-headers", EXPOSE_HEADERS),
        (b"vary", b"Origin"),
    ]


async def preflight(origin: str | None, send: Send) -> None:
    """OPTIONS: answered from `allowedOrigins`; anyone else learns nothing."""
    headers = asgi_security_headers()
    if origin and is_allowed(origin):
        status = 204
        headers += [
            (b"access-control-allow-methods", ALLOW_METHODS),
            (b"access-control-allow-headers", ALLOW_HEADERS),
            (b"access-control-max-age", b"3600"),
            *cors_headers(origin),
        ]
    else:
        status = 403
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
