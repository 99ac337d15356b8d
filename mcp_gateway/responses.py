"""A complete small answer the gateway writes itself (errors, preflights), as ASGI messages."""

import json
from dataclasses import dataclass, field

from channels.consumer import AsyncConsumer
from django.conf import settings

SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", settings.SECURE_REFERRER_POLICY.encode()),
]


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def send(self, consumer: AsyncConsumer, extra_headers: list[tuple[bytes, bytes]]) -> None:
        content_type = [(b"content-type", b"application/json")] if self.body else []
        headers = [*content_type, *SECURITY_HEADERS, *self.headers, *extra_headers]
        await consumer.send({"type": "http.response.start", "status": self.status, "headers": headers})
        await consumer.send({"type": "http.response.body", "body": self.body})


def error(status: int, code: str, description: str) -> Reply:
    return Reply(status, json.dumps({"error": code, "error_description": description}).encode())
