"""Outbound HTTP to the identity provider: the resolved address is checked and pinned, no redirects, bounded."""

import ipaddress
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3

from oauth_server.cimd import ssl_context

TIMEOUT_SECONDS = 10.0
MAX_BODY_BYTES = 1 << 20


class OutboundError(Exception):
    """The provider could not be reached, or answered something unreadable."""


class OutboundBlocked(OutboundError):
    """The provider's host resolves to an address this site may not call (SSRF protection)."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise OutboundError(f"answer is not JSON (HTTP {self.status})") from exc


def _public(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return address.is_global and not address.is_multicast


def resolve(hostname: str, port: int, allow_private: bool) -> list[str]:
    """The host's addresses; every one must be public unless the operator allowed private ones."""
    try:
        infos = socket.getaddrinfo(hostname, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise OutboundError(f"cannot resolve {hostname}: {exc}") from exc
    ips = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private and (blocked := [ip for ip in ips if not _public(ip)]):
        raise OutboundBlocked(f"{hostname} resolves to a non-public address ({blocked[0]}); see allowPrivateIPOIDC")
    return ips


def request(
    method: str,
    url: str,
    *,
    allow_private: bool,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> Response:
    """One request to the address the host resolved to (no second lookup, so no DNS rebinding)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundError("not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    sent = {"Host": parts.netloc, "Accept": "application/json", "User-Agent": "muster", **(headers or {})}
    body = None
    if form is not None:
        body = urlencode(form)
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    last: Exception | None = None
    for ip in resolve(parts.hostname, port, allow_private):
        pool = _pool(parts.scheme, ip, port, parts.hostname, timeout)
        try:
            answer = pool.urlopen(method, path, body=body, headers=sent, redirect=False, preload_content=False)
            try:
                data = answer.read(MAX_BODY_BYTES + 1, decode_content=True)
            finally:
                answer.release_conn()
            if len(data) > MAX_BODY_BYTES:
                raise OutboundError("answer larger than 1 MiB")
            return Response(answer.status, data, answer.headers.get("Content-Type", ""))
        except urllib3.exceptions.HTTPError as exc:
            last = exc
        finally:
            pool.close()
    raise OutboundError(f"cannot reach {parts.hostname}: {type(last).__name__}: {last}"[:200])


def _pool(scheme: str, ip: str, port: int, hostname: str, timeout: float) -> urllib3.HTTPConnectionPool:
    limits = urllib3.Timeout(connect=timeout, read=timeout)
    if scheme == "http":
        return urllib3.HTTPConnectionPool(host=ip, port=port, timeout=limits, retries=False, maxsize=1)
    # The validated address is dialled; SNI and the certificate check use the real name.
    return urllib3.HTTPSConnectionPool(
        host=ip,
        port=port,
        timeout=limits,
        retries=False,
        maxsize=1,
        ssl_context=ssl_context(),
        server_hostname=hostname,
    )
