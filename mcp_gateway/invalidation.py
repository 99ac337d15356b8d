"""Drops cached /mcp validations the moment a token is deleted or its user deactivated (after commit)."""

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from oauth2_provider.models import AccessToken

from mcp_gateway import bearer


def _access_token_deleted(sender: Any, instance: AccessToken, **kwargs: Any) -> None:
    checksum = instance.token_checksum
    transaction.on_commit(lambda: bearer.invalidate([checksum]))


def _user_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.is_active:
        return
    checksums = list(AccessToken.objects.filter(user=instance).values_list("token_checksum", flat=True))
    transaction.on_commit(lambda: bearer.invalidate(checksums))


def connect() -> None:
    """Revocation by the endpoint, the admin, a command or reuse detection all delete access tokens."""
    post_delete.connect(_access_token_deleted, sender=AccessToken, dispatch_uid="mcp-token-deleted")
    post_save.connect(_user_saved, sender=get_user_model(), dispatch_uid="mcp-user-saved")
