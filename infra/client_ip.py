"""The client's IP address behind trusted proxies (X-Forwarded-For), and the rate-limit bucket it belongs to."""

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_ip(remote_addr: str, forwarded_for: str | None, trusted: Sequence[str]) -> str:
    """The peer's address, or, when the peer is a trusted proxy, the right-most X-Forwarded-For hop not trusted."""
    peer = parse_ip(remote_addr)
    if peer is None:
        return remote_addr.strip()
    networks = _networks(tuple(trusted))
    if not _is_trusted(peer, networks):
        return str(peer)
    hops = [hop for hop in map(parse_ip, (forwarded_for or "").split(",")) if hop is not None]
    for hop in reversed(hops):
        if not _is_trusted(hop, networks):
            return str(hop)
    return str(hops[0] if hops else peer)


@lru_cache(maxsize=4096)
def bucket_key(ip: str) -> str:
    """What one client is limited as: an IPv4 address itself, an IPv6 address's /64 (one site's whole prefix)."""
    address = parse_ip(ip)
    if address is None:
        return ip
    if address.version == 4:
        return str(address)
    return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))


@lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress | None:
    """An address from "1.2.3.4", "1.2.3.4:5678", "2001:db8::1" or "[2001:db8::1]:443"; v4-mapped IPv6 as IPv4."""
    host = _strip_port(text.strip())
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def django_client_ip(request: HttpRequest) -> str:
    """The client IP of a Django request, believing X-Forwarded-For only from `trustedProxyCIDRs`."""
    return client_ip(
        request.META.get("REMOTE_ADDR") or "",
        request.META.get("HTTP_X_FORWARDED_FOR"),
        settings.MUSTER_CONFIG.trusted_proxy_cidrs,
    )


def asgi_client_ip(scope: Mapping[str, Any]) -> str:
    """The client IP of an ASGI HTTP scope ("" without a peer address, e.g. over a Unix socket)."""
    peer = scope.get("client")
    return client_ip(
        peer[0] if peer else "",
        _joined_header(scope.get("headers", ()), b"x-forwarded-for"),
        settings.MUSTER_CONFIG.trusted_proxy_cidrs,
    )


def _strip_port(host: str) -> str:
    """The host part of "[v6]:port", "[v6]", "v4:port"; anything else as it is ("" when a port is malformed)."""
    if host.startswith("["):
        inside, closed, rest = host[1:].partition("]")
        port_ok = not rest or (rest[0] == ":" and rest[1:].isdigit())
        return inside if closed and port_ok else ""
    if host.count(":") == 1:
        address, _, port = host.partition(":")
        return address if port.isdigit() else ""
    return host


@lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """The trusted networks, parsed once per configured value (the configuration already validated them)."""
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _is_trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def _joined_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """Every value of a repeated header in order, joined by commas as HTTP allows; None when absent."""
    values = [value.decode("latin-1") for key, value in headers if key.lower() == name]
    return ",".join(values) if values else None
