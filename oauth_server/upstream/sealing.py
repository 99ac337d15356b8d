"""Upstream tokens at rest: AES-256-GCM under `encryptionKey` (or a key derived from the secret key)."""

import json
import os
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

NONCE_BYTES = 12


class SealError(Exception):
    """A sealed value cannot be opened: another key, another owner, or altered."""


@lru_cache(maxsize=4)
def _cipher(configured_key: bytes | None, secret_key: str) -> AESGCM:
    if configured_key is not None:
        return AESGCM(configured_key)
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"muster upstream tokens v1")
    return AESGCM(kdf.derive(secret_key.encode()))


def cipher() -> AESGCM:
    return _cipher(settings.MUSTER_CONFIG.encryption_key, settings.SECRET_KEY)


def seal(values: dict[str, Any], owner: str) -> bytes:
    """Encrypt `values` (JSON) bound to `owner`: a blob moved to another owner does not open."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + cipher().encrypt(nonce, json.dumps(values).encode(), owner.encode())


def unseal(blob: bytes, owner: str) -> dict[str, Any]:
    try:
        plain = cipher().decrypt(bytes(blob[:NONCE_BYTES]), bytes(blob[NONCE_BYTES:]), owner.encode())
    except (InvalidTag, ValueError) as exc:
        raise SealError("upstream tokens cannot be decrypted with this key") from exc
    return json.loads(plain)
