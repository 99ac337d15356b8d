"""The security audit log: one JSON line per event on the `muster.audit` logger, identifiers hashed.

Never a raw token, secret, code, verifier or full email: users, clients and IP addresses appear as the
first 16 hex characters of their SHA-256. Security events (replays, mismatches, refusals) are throttled
per (user, client, event) so an attack cannot flood the log; every event is still counted in the metrics.
"""

import contextvars
import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from infra import metrics
from infra.ratelimit import security_log_allows

log = logging.getLogger("muster.audit")

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("muster_request_id", default=None)
client_ip: contextvars.ContextVar[str | None] = contextvars.ContextVar("muster_client_ip", default=None)

SECURITY_EVENTS = frozenset(
    {
        "refresh_token_reuse_detected",
        "code_reuse_detected",
        "client_binding_mismatch",
        "resource_mismatch",
        "pkce_failure",
        "rate_limit_exceeded",
        "token_validation_failed",
        "registration_refused",
        "cimd_blocked",
        "cimd_id_mismatch",
    }
)


def hashed(value: object) -> str | None:
    """A stable, non-reversible stand-in for an identifier (SHA-256, 16 hex characters)."""
    if value is None or value == "":
        return None
    return hashlib.sha256(str(value).encode()).hexdigest()[:16]


def record(
    event: str,
    outcome: str = "success",
    *,
    user_id: object = None,
    client_id: object = None,
    **fields: Any,
) -> None:
    """Write one audit line (unless a security event is being repeated too fast) and count it."""
    metrics.observe_event(event, outcome)
    user, client = hashed(user_id), hashed(client_id)
    if event in SECURITY_EVENTS and not security_log_allows(user or "-", client or "-", event):
        return
    line = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "event": event,
        "outcome": outcome,
        "user": user,
        "client": client,
        "ip": hashed(client_ip.get()),
        "request_id": request_id.get(),
        **fields,
    }
    log.info(json.dumps(line, default=str))
