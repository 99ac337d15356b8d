"""Outbound HTTP (identity provider, client metadata documents): the resolved address is checked and pinned.

The host is resolved once; every address must be globally routable (DOT's rule, which also decodes IPv4
embedded in IPv6 forms) unless the caller allows private ones; the connection goes to that checked address
(no second lookup, so no DNS rebinding) with SNI, certificate and Host for the real name. No redirects are
followed, one deadline covers every address tried, and bodies are read up to a cap.
"""

import json
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3
from django.conf import settings

from oauth_server.dot_compat import ip_is_public

TIMEOUT_SECONDS = 10.0
MAX_BODY_BYTES = 1 << 20


class OutboundError(Exception):
    """The host could not be reached, or answered something unreadable."""


class OutboundBlocked(OutboundError):
    """The host resolves to an address this site may not call (SSRF protection)."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise OutboundError(f"answer is not JSON (HTTP {self.status})") from exc


@lru_cache(maxsize=8)
def _ssl_context(extra_ca_file: str) -> ssl.SSLContext:
    """The default CAs, plus `extraCAFile` when set (a missing or bad file fails every fetch, loudly)."""
    context = ssl.create_default_context()
    if extra_ca_file:
        context.load_verify_locations(cafile=extra_ca_file)
    return context


def ssl_context() -> ssl.SSLContext:
    return _ssl_context(settings.MUSTER_CONFIG.extra_ca_file)


def resolve(hostname: str, port: int, allow_private: bool) -> list[str]:
    """The host's addresses; one that is not public refuses the whole host unless private ones are allowed."""
    try:
        infos = socket.getaddrinfo(hostname, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise OutboundError(f"could not resolve {hostname}: {exc}") from exc
    ips = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not ips:
        raise OutboundError(f"{hostname} did not resolve to any address")
    if not allow_private and (blocked := [ip for ip in ips if not ip_is_public(ip)]):
        raise OutboundBlocked(f"{hostname} resolves to a non-public address ({blocked[0]})")
    return ips


@contextmanager
def pinned(
    method: str,
    url: str,
    *,
    allow_private: bool,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> Iterator[urllib3.BaseHTTPResponse]:
    """The streamed answer of one request to a checked address of the URL's host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundError("not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    sent = {"Host": parts.netloc, "Accept": "application/json", "User-Agent": "muster", **(headers or {})}
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    for ip in resolve(parts.hostname, port, allow_private):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        pool = _pool(parts.scheme, ip, port, parts.hostname, remaining)
        try:
            answer = pool.urlopen(method, path, body=body, headers=sent, redirect=False, preload_content=False)
        except urllib3.exceptions.HTTPError as exc:
            last = exc
            pool.close()
            continue
        try:
            yield answer
        finally:
            answer.release_conn()
            pool.close()
        return
    detail = f"{type(last).__name__}: {last}" if last else "timed out"
    raise OutboundError(f"cannot reach {parts.hostname}: {detail}"[:200])


def request(
    method: str,
    url: str,
    *,
    allow_private: bool,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """One request, its body read whole (at most 1 MiB); a form is sent url-encoded."""
    sent = dict(headers or {})
    if form is not None:
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    body = urlencode(form) if form is not None else None
    try:
        with pinned(method, url, allow_private=allow_private, body=body, headers=sent) as answer:
            data = answer.read(MAX_BODY_BYTES + 1, decode_content=True)
            status = answer.status
    except urllib3.exceptions.HTTPError as exc:  # the connection broke while the body was read
        raise OutboundError(f"the answer from {urlsplit(url).hostname} broke off: {exc}"[:200]) from exc
    if len(data) > MAX_BODY_BYTES:
        raise OutboundError("answer larger than 1 MiB")
    return Response(status, data)


def _pool(scheme: str, ip: str, port: int, hostname: str, timeout: float) -> urllib3.HTTPConnectionPool:
    limits = urllib3.Timeout(connect=timeout, read=timeout, total=timeout)
    if scheme == "http":
        return urllib3.HTTPConnectionPool(host=ip, port=port, timeout=limits, retries=False, maxsize=1)
    return urllib3.HTTPSConnectionPool(
        host=ip,
        port=port,
        timeout=limits,
        retries=False,
        maxsize=1,
        ssl_context=ssl_context(),
        server_hostname=hostname,
    )
