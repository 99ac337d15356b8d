"""System check: the configured in-process MCP app can be imported (`manage.py check`, `migrate`)."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, register
from django.utils.module_loading import import_string


@register()
def mcp_app_importable(app_configs: Any, **kwargs: Any) -> list[Error]:
    mcp = settings.MUSTER_CONFIG.mcp
    if mcp.upstream_url:
        return []
    try:
        import_string(mcp.app.replace(":", "."))
    except ImportError as exc:
        return [Error(f"mcp.app: cannot import {mcp.app} ({exc})", id="muster.E002")]
    return []
