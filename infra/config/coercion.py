"""From what YAML, the environment or a *File gave to the declared type: one function per type."""

import base64
import binascii
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from infra.config.durations import parse_go_duration

_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def yaml_kind(value: object) -> str:
    """How YAML people name the type of a value that was given: mapping, list, boolean, number, ..."""
    return {"dict": "mapping", "list": "list", "bool": "boolean", "int": "number", "float": "number"}.get(
        type(value).__name__, type(value).__name__
    )


def _to_str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got a YAML {yaml_kind(value)} (quote it in YAML)")
    return value


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str | int) and str(value).strip().lower() in _BOOLS:
        return _BOOLS[str(value).strip().lower()]
    raise ValueError(f"must be a boolean (true/false/1/0/yes/no), got {value!r}")


def _to_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise ValueError(f"must be an integer, got {value!r}")


def _to_list(value: object) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError("must be a list of strings or a comma-separated string")
    return tuple(text for item in items if (text := item.strip()))


def _to_duration(value: object) -> timedelta:
    if not isinstance(value, str):
        raise ValueError(f"must be a Go duration string such as 720h, got a YAML {yaml_kind(value)}")
    duration = parse_go_duration(value.strip())
    if duration <= timedelta(0):
        raise ValueError(f"must be greater than zero, got {value!r}")
    return duration


def _to_key(value: object) -> bytes | None:
    """32 bytes from 64 hex characters or base64 (standard or urlsafe, padded or not); never echoed."""
    text = _to_str(value).strip()
    return _decode_key(text) if text else None


def _to_keys(value: object) -> tuple[bytes, ...]:
    """Keys as for `_to_key`, listed in YAML or separated by commas, spaces or newlines; never echoed."""
    items = re.split(r"[\s,]+", value) if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError("must be a list of keys or a comma-separated string")
    keys = []
    for number, text in enumerate((item.strip() for item in items if item.strip()), start=1):
        try:
            keys.append(_decode_key(text))
        except ValueError as exc:
            raise ValueError(f"key {number} {exc}") from None
    return tuple(dict.fromkeys(keys))


def _decode_key(text: str) -> bytes:
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    unpadded = text.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ValueError("must be 32 bytes encoded as base64 or as 64 hex characters")
    return key


COERCE: dict[object, Callable[[object], Any]] = {
    str: _to_str,
    bool: _to_bool,
    bool | None: _to_bool,
    int: _to_int,
    tuple[str, ...]: _to_list,
    timedelta: _to_duration,
    bytes | None: _to_key,
    tuple[bytes, ...]: _to_keys,
}
TYPE_NAMES: dict[object, str] = {
    str: "string",
    bool: "bool",
    bool | None: "bool",
    int: "int",
    tuple[str, ...]: "list",
    timedelta: "duration",
    bytes | None: "32-byte key",
    tuple[bytes, ...]: "32-byte keys",
}
