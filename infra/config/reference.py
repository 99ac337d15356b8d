"""The Markdown reference table of every setting that docs/configuration.md shows (`python -m infra.config`)."""

from datetime import timedelta

from infra.config.coercion import TYPE_NAMES
from infra.config.durations import format_go_duration
from infra.config.schema import LEAVES


def _shown(default: object) -> str:
    if default is None:
        return "(unset)"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, timedelta):
        return f"`{format_go_duration(default)}`"
    if isinstance(default, tuple):
        default = ",".join(default)
    return f"`{default}`" if default != "" else "(empty)"


def reference_table() -> str:
    """The Markdown table of every setting, as docs/configuration.md shows it."""
    rows = [
        "| YAML key | Environment variable | Type | Default | Meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for leaf in LEAVES:
        key, env = f"`{leaf.key}`", f"`{leaf.env}`"
        if leaf.file_key:
            key, env = f"{key}, `{leaf.file_key}`", f"{env}, `{leaf.env}_FILE`"
        env += "".join(f", `{alias}`" for alias in leaf.meta["aliases"])
        rows.append(f"| {key} | {env} | {TYPE_NAMES[leaf.type]} | {_shown(leaf.default)} | {leaf.meta['doc']} |")
    return "\n".join(rows) + "\n"
