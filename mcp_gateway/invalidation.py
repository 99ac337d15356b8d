"""Revoked tokens stop at once: recorded with the revocation (same transaction), dropped from caches after commit."""

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from oauth2_provider.models import AccessToken

from mcp_gateway import bearer, revocations


def _access_token_deleted(sender: Any, instance: AccessToken, **kwargs: Any) -> None:
    checksum = instance.token_checksum
    if instance.expires > timezone.now():  # an expired token is refused anyway (and the cleanup deletes many)
        revocations.record([checksum])
    transaction.on_commit(lambda: bearer.invalidate([checksum]))


def _user_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.is_active:
        return
    checksums = list(
        AccessToken.objects.filter(user=instance, expires__gt=timezone.now()).values_list("token_checksum", flat=True)
    )
    revocations.record(checksums)
    transaction.on_commit(lambda: bearer.invalidate(checksums))


def connect() -> None:
    """Revocation by the endpoint, the admin, a command or reuse detection all delete access tokens."""
    post_delete.connect(_access_token_deleted, sender=AccessToken, dispatch_uid="mcp-token-deleted")
    post_save.connect(_user_saved, sender=get_user_model(), dispatch_uid="mcp-user-saved")
