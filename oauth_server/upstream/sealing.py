"""Upstream tokens at rest: AES-256-GCM under `encryptionKey` (or a key derived from the secret key), with a key id.

A sealed value is `FORMAT`, the sealing key's id, a nonce and the ciphertext; the format byte and key id are
authenticated with the owner, so neither can be altered. It opens under `encryptionKey` or any of
`previousEncryptionKeys`, which lets the key rotate. Values sealed before key ids (nonce first, no header) still
open under any of those keys.
"""

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

FORMAT = b"\x01"  # version 1: key id, nonce, ciphertext
KEY_ID_BYTES = 4
HEADER_BYTES = len(FORMAT) + KEY_ID_BYTES
NONCE_BYTES = 12


class SealError(Exception):
    """A sealed value cannot be opened: another key, another owner, or altered."""


@dataclass(frozen=True)
class _Key:
    id: bytes
    cipher: AESGCM


def key_id(key: bytes) -> bytes:
    """A short public name for a key (a labelled SHA-256 prefix), to pick the key without trying each one."""
    return hashlib.sha256(b"muster sealing key id\0" + key).digest()[:KEY_ID_BYTES]


@lru_cache(maxsize=4)
def _keyring(configured_key: bytes | None, previous_keys: tuple[bytes, ...], secret_key: str) -> tuple[_Key, ...]:
    """The key new values are sealed under, then the keys it replaced."""
    if configured_key is None:
        kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"muster upstream tokens v1")
        configured_key = kdf.derive(secret_key.encode())
    return tuple(_Key(key_id(key), AESGCM(key)) for key in dict.fromkeys((configured_key, *previous_keys)))


def _keys() -> tuple[_Key, ...]:
    config = settings.MUSTER_CONFIG
    return _keyring(config.encryption_key, config.previous_encryption_keys, settings.SECRET_KEY)


def seal(values: dict[str, Any], owner: str) -> bytes:
    """Encrypt `values` (JSON) bound to `owner`: a blob moved to another owner does not open."""
    key = _keys()[0]
    header, nonce = FORMAT + key.id, os.urandom(NONCE_BYTES)
    return header + nonce + key.cipher.encrypt(nonce, json.dumps(values).encode(), header + owner.encode())


def unseal(blob: bytes, owner: str) -> dict[str, Any]:
    blob = bytes(blob)
    keys = _keys()
    header = blob[:HEADER_BYTES]
    named = [key for key in keys if header == FORMAT + key.id]
    for key in named:
        if (plain := _open(key, blob[HEADER_BYTES:], header + owner.encode())) is not None:
            return json.loads(plain)
    for key in keys:  # sealed before key ids, by whichever key was in use then
        if (plain := _open(key, blob, owner.encode())) is not None:
            return json.loads(plain)
    if header[:1] == FORMAT and not named:
        raise SealError(
            f"upstream tokens were sealed under key id {header[1:].hex()}, which is neither encryptionKey "
            "nor one of previousEncryptionKeys"
        )
    raise SealError("upstream tokens cannot be decrypted with this key")


def _open(key: _Key, nonce_and_ciphertext: bytes, associated: bytes) -> bytes | None:
    try:
        return key.cipher.decrypt(nonce_and_ciphertext[:NONCE_BYTES], nonce_and_ciphertext[NONCE_BYTES:], associated)
    except (InvalidTag, ValueError):
        return None
