"""Audit lines for browser sessions ending: the sign-out page, the consent page's "Not you?", the admin."""

from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from infra import audit


@receiver(user_logged_out)
def signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit.record("signed_out", user_id=user.pk if user is not None else None)
