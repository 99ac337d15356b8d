"""The tree's layers: imports run one way (project → resource server → authorization server → infra), no circles."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("muster_project", "mcp_gateway", "oauth_server", "infra")

# What each layer may import of ours, most specific prefix first. Everything else (Django, DOT, the SDK) is free.
ALLOWED = (
    ("infra", ("infra",)),
    ("oauth_server.models", ("infra",)),
    ("oauth_server.dot_compat", ()),
    ("oauth_server.migrations", ("infra", "oauth_server.models")),
    ("oauth_server.upstream", ("infra", "oauth_server.models", "oauth_server.dot_compat", "oauth_server.upstream")),
    ("oauth_server", ("infra", "oauth_server")),
    ("mcp_gateway", ("infra", "oauth_server", "mcp_gateway")),
    ("muster_project", PACKAGES),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Our modules that `name` imports anywhere in its body (function-level imports count too)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target.split(".")[0] in PACKAGES)
    return found - {name}


def layer_of(name: str) -> tuple[str, tuple[str, ...]]:
    return next((prefix, allowed) for prefix, allowed in ALLOWED if name == prefix or name.startswith(prefix + "."))


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_no_import_runs_upward():
    upward = [
        f"{name} imports {target}"
        for name, targets in sorted(graph().items())
        for target in sorted(targets)
        if not within(target, layer_of(name)[1])
    ]
    assert upward == []


def test_no_module_imports_itself_in_a_circle():
    edges = graph()
    circles: list[list[str]] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in edges:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            component.append(node)
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert circles == []


def test_the_rule_sees_a_real_import():
    """Guard the guard: the authorization server is seen importing infra, and the gateway the server."""
    edges = graph()
    assert "infra.audit" in edges["oauth_server.families"]
    assert any(target.startswith("oauth_server") for target in edges["mcp_gateway.bearer"])
