"""Django app configuration for the project's wiring: derived settings follow the configuration."""

from django.apps import AppConfig
from django.core.signals import setting_changed


class MusterProjectConfig(AppConfig):
    name = "muster_project"
    verbose_name = "Muster project"

    def ready(self) -> None:
        from muster_project.derived_settings import follow_the_config

        setting_changed.connect(follow_the_config, dispatch_uid="muster_project.follow_the_config")
