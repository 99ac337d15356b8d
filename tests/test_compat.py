"""The private DOT and oauthlib names we rely on exist as we call them; only oauth_server.dot_compat uses any."""

import ast
import importlib
import inspect
from pathlib import Path

import oauth2_provider
import oauthlib
import pytest
from oauth2_provider import cimd as dot_cimd
from oauth2_provider.cimd import SafeMetadataFetcher
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.views import dynamic_client_registration as dot_registration

from oauth_server.dot_compat import VERSIONS

ROOT = Path(__file__).resolve().parent.parent
COMPAT = ROOT / "oauth_server" / "dot_compat.py"
OUR_PACKAGES = ("muster_project", "mcp_gateway", "oauth_server", "infra")
FOREIGN_PACKAGES = ("oauth2_provider", "oauthlib")

# (owner, private name, the signature dot_compat calls it with)
RELIED_ON = [
    (dot_registration, "_build_application_kwargs", "(data)"),
    (dot_registration, "_validation_error_description", "(exc)"),
    (dot_cimd, "_build_application_kwargs", "(metadata)"),
    (dot_cimd, "_validate_client_id_url", "(client_id)"),
    (dot_cimd, "_ip_is_public", "(ip_str)"),
    (SafeMetadataFetcher, "_read_document", "(self, response)"),
    (OAuth2Validator, "_load_application", "(self, client_id, request)"),
    (OAuth2Validator, "_create_authorization_code", "(self, request, code, expires=None)"),
    (
        OAuth2Validator,
        "_create_refresh_token",
        "(self, request, refresh_token_code, access_token, previous_refresh_token)",
    ),
]


def qualified(owner: object, name: str) -> str:
    if inspect.ismodule(owner):
        return f"{owner.__name__}.{name}"
    return f"{owner.__module__}.{owner.__qualname__}.{name}"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("owner", "name", "signature"), RELIED_ON, ids=[name for _, name, _ in RELIED_ON])
def test_each_private_name_we_rely_on_exists_with_its_signature(owner, name, signature):
    where = qualified(owner, name)
    found = getattr(owner, name, None)
    assert found is not None, f"{where} is gone in {VERSIONS}: adapt oauth_server/dot_compat.py"
    assert str(inspect.signature(found)) == signature, (
        f"{where} is now {name}{inspect.signature(found)} in {VERSIONS}, dot_compat calls it as {name}{signature}"
    )


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_every_private_name_dot_compat_uses_is_pinned_above():
    tree = ast.parse(COMPAT.read_text())
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and private(node.attr)}
    overridden = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and private(node.name)}

    assert used | overridden == {name for _, name, _ in RELIED_ON}


def foreign_private_names() -> set[str]:
    """Every private function, method, class or attribute name DOT and oauthlib define."""
    names: set[str] = set()
    for package in (oauth2_provider, oauthlib):
        for path in Path(package.__file__).parent.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    names.add(node.name)
                elif isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Store):
                    names.add(node.id if isinstance(node, ast.Name) else node.attr)
    return {name for name in names if private(name)}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def reaches_foreign(path: Path, foreign: set[str], root: Path = ROOT) -> list[str]:
    """Where a module imports, reads, calls or overrides a private name of DOT or oauthlib."""
    tree = ast.parse(path.read_text())
    where = path.relative_to(root)
    ours = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    ours |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    ours |= {  # our own attributes: set on self or cls, never on an object of DOT's or oauthlib's
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("self", "cls")
    }
    found = [
        f"{where}:{node.lineno} imports {alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(FOREIGN_PACKAGES)
        for alias in node.names
        if private(alias.name)
    ]
    found += [
        f"{where}:{node.lineno} uses .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in foreign and node.attr not in ours
    ]
    for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
        methods = [node for node in cls.body if isinstance(node, ast.FunctionDef) and node.name in foreign]
        if not methods:
            continue
        mro = getattr(importlib.import_module(module_name(path, root)), cls.name).__mro__
        found += [
            f"{where}:{method.lineno} overrides {base.__module__}.{base.__name__}.{method.name}"
            for method in methods
            for base in mro
            if base.__module__.startswith(FOREIGN_PACKAGES) and method.name in vars(base)
        ]
    return found


def test_no_module_but_dot_compat_reaches_a_private_name_of_dot_or_oauthlib():
    foreign = foreign_private_names()
    paths = [
        path
        for package in OUR_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != COMPAT and "migrations" not in path.parts
    ]

    assert [line for path in paths for line in reaches_foreign(path, foreign)] == []


def test_the_guard_sees_a_private_name_used_outside_dot_compat(tmp_path, monkeypatch):
    """Guard the guard: the rule above flags an import, an attribute and an override, in a file that does all three."""
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = tmp_path / "muster_compat_probe.py"
    probe.write_text(
        "from oauth2_provider.cimd import _ip_is_public\n"
        "from oauth2_provider.oauth2_validators import OAuth2Validator\n"
        "from oauthlib.oauth2 import WebApplicationServer\n\n\n"
        "class Probe(OAuth2Validator):\n"
        "    def _load_application(self, client_id, request):\n"
        "        return None\n\n\n"
        "def narrow(server: WebApplicationServer) -> None:\n"
        "    server.auth_grant._code_challenge_methods = {}\n"
    )
    found = reaches_foreign(probe, foreign_private_names(), root=tmp_path)

    assert [line.split(" ", 1)[1] for line in found] == [
        "imports _ip_is_public",
        "uses ._code_challenge_methods",
        "overrides oauth2_provider.oauth2_validators.OAuth2Validator._load_application",
    ]
