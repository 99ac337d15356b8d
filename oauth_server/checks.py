"""System check: a bad configuration value is reported by `manage.py check` and stops `migrate`."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, register


@register()
def configuration_is_valid(app_configs: Any, **kwargs: Any) -> list[Error]:
    if not settings.MUSTER_CONFIG_ERROR:
        return []
    return [Error(settings.MUSTER_CONFIG_ERROR, hint="See docs/configuration.md.", id="muster.E001")]
