"""URL helpers every layer shares: loopback hosts, RFC 8707 canonical resources, strict parsing of configured URLs."""

import ipaddress
from urllib.parse import SplitResult, urlsplit, urlunsplit


def is_loopback_host(host: str) -> bool:
    """True for "localhost", any 127.0.0.0/8 address and ::1 (with or without brackets)."""
    host = host.lower().removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def canonical_resource(uri: str) -> str:
    """Lowercase scheme and host, drop a default port, strip one trailing "/"; keep path case and query."""
    parts = urlsplit(uri)
    scheme, host, port = parts.scheme.lower(), (parts.hostname or ""), parts.port
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and (scheme, port) not in (("https", 443), ("http", 80)):
        netloc += f":{port}"
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path.removesuffix("/"), parts.query, parts.fragment))


def split_url(value: str) -> SplitResult:
    """urlsplit that also rejects whitespace and bad ports, so later code can trust the result."""
    if any(char.isspace() for char in value):
        raise ValueError("must not contain whitespace")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    return parts


def http_url(value: str) -> SplitResult:
    """split_url of an absolute http(s) URL without a fragment, https unless its host is loopback."""
    parts = split_url(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    if parts.scheme != "https" and not is_loopback_host(parts.hostname):
        raise ValueError("must be https unless its host is loopback")
    if "#" in value:
        raise ValueError("must not have a fragment")
    return parts
