"""The Django project: settings built from the typed configuration, URLs and the ASGI entry point."""
