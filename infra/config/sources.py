"""Where settings come from: embedded defaults, then the MUSTER_CONFIG YAML (${VAR} expanded), then env and *File."""

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from infra.config.coercion import COERCE, yaml_kind
from infra.config.schema import KEYS, LEAVES, SECTIONS, Config


class ConfigError(Exception):
    """A setting is malformed or refused; ``str(err)`` is ``"<key>: <message>"`` on one line."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


_BLOCKS = ("aggregator.oauthServer", "aggregator.oauth.server")
_PROVIDER_REQUIRES = {
    "dex": ("issuerUrl", "clientId", "clientSecret"),
    "oidc": ("issuerUrl", "clientId", "clientSecret"),
    "google": ("clientId", "clientSecret"),
}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(key: str, value: Any, environ: Mapping[str, str]) -> Any:
    """Replace ${VAR} in a YAML string (or list of strings) from the environment."""
    if isinstance(value, list):
        return [_expand(key, item, environ) for item in value]
    if not isinstance(value, str):
        return value
    for name in _VAR.findall(value):
        if name not in environ:
            raise ConfigError(key, f"environment variable {name} is not set (referenced as ${{{name}}})")
    return _VAR.sub(lambda match: environ[match[1]], value)


def _flatten(block: Mapping[Any, Any], prefix: str, environ: Mapping[str, str], out: dict[str, Any]) -> None:
    for name, value in block.items():
        key = f"{prefix}{name}"
        if key in SECTIONS:
            if value is not None and not isinstance(value, dict):
                raise ConfigError(key, f"must be a mapping, got a YAML {yaml_kind(value)}")
            _flatten(value or {}, key + ".", environ, out)
        elif key in KEYS:
            if value is not None:  # a bare "key:" leaves the setting unset
                out[key] = _expand(key, value, environ)
        else:
            close = difflib.get_close_matches(key, sorted(KEYS | SECTIONS), n=1)
            raise ConfigError(key, "unknown key" + (f"; did you mean {close[0]}?" if close else ""))


def _read_yaml(path: str, environ: Mapping[str, str]) -> dict[str, Any]:
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("MUSTER_CONFIG", f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("MUSTER_CONFIG", f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError("MUSTER_CONFIG", f"{path} must hold a YAML mapping")
    found: list[tuple[str, Any]] = []
    for block in _BLOCKS:
        node: Any = document
        for part in block.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            found.append((block, node))
    if len(found) > 1:
        raise ConfigError(_BLOCKS[1], f"both {_BLOCKS[0]} and {_BLOCKS[1]} are present; keep one")
    out: dict[str, Any] = {}
    for block, node in found:
        if not isinstance(node, dict):
            raise ConfigError(block, f"must be a mapping, got a YAML {yaml_kind(node)}")
        _flatten(node, "", environ, out)
    return out


def _build(cls: type, prefix: str, values: Mapping[str, Any]) -> Any:
    kwargs = {}
    for f in fields(cls):
        key = prefix + f.metadata["key"]
        kwargs[f.name] = _build(f.type, key + ".", values) if key in SECTIONS else values[key]  # type: ignore[arg-type]
    return cls(**kwargs)


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Defaults, then the YAML file named by MUSTER_CONFIG, then MUSTER_*/alias env; raises ConfigError."""
    environ = os.environ if environ is None else environ
    raw: dict[str, tuple[Any, str]] = {}  # key -> (value, where it came from)
    if path := environ.get("MUSTER_CONFIG", ""):
        raw.update((key, (value, path)) for key, value in _read_yaml(path, environ).items())
    for leaf in LEAVES:
        twin = [(leaf.file_key, leaf.env + "_FILE")] if leaf.file_key else []
        for key, name in [
            *((leaf.key, alias) for alias in leaf.meta["aliases"]),
            (leaf.key, leaf.env),
            *twin,
        ]:
            if name in environ:
                raw[key] = (environ[name], name)

    values: dict[str, Any] = {}
    for leaf in LEAVES:
        value, origin = raw.get(leaf.key, (leaf.default, ""))
        if leaf.file_key and raw.get(leaf.file_key, ("", ""))[0]:
            file_path, where = raw[leaf.file_key]
            if not isinstance(file_path, str):
                raise ConfigError(leaf.file_key, f"must be a file path string, got a YAML {yaml_kind(file_path)}")
            try:
                value, origin = Path(file_path).read_text(encoding="utf-8").rstrip(), file_path
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or exc
                raise ConfigError(leaf.file_key, f"cannot read {file_path} (from {where}): {reason}") from None
        try:
            if origin:
                value = COERCE[leaf.type](value)
            values[leaf.key] = leaf.meta["check"](value) if leaf.meta["check"] else value
        except ValueError as exc:
            raise ConfigError(leaf.key, f"{exc} (from {origin})" if origin else str(exc)) from None

    if "storage.type" not in raw and values["storage.valkey.url"]:
        values["storage.type"] = "valkey"
    if values["storage.type"] == "valkey" and not values["storage.valkey.url"]:
        raise ConfigError("storage.valkey.url", "is required when storage.type is valkey")
    provider = values["provider"]
    for name in _PROVIDER_REQUIRES.get(provider, ()):
        if not values[f"{provider}.{name}"]:
            raise ConfigError(f"{provider}.{name}", f"is required when provider is {provider}")
    return _build(Config, "", values)
