"""What an operator does to a client: disable it or delete it, and either way its tokens stop working."""

from typing import Any

from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application

from infra import audit
from oauth_server.families import revoke_families_of
from oauth_server.models import ClientRegistration


def revoke_client_tokens(client: Application, reason: str) -> None:
    """Every family of the client, then any access token left without one."""
    revoke_families_of(reason, application=client)
    AccessToken.objects.filter(application=client).delete()


def disable_client(client: Application) -> None:
    """No new authorizations or tokens; the existing ones are revoked."""
    with transaction.atomic():
        ClientRegistration.objects.update_or_create(
            application=client, defaults={"disabled": True}, create_defaults={"gate": "operator", "disabled": True}
        )
        revoke_client_tokens(client, reason="client-disabled")
    audit.record("client_disabled", client_id=client.client_id)


def delete_client(client: Application) -> None:
    """The client and everything issued to it (DOT cascades grants and tokens)."""
    client_id = client.client_id
    with transaction.atomic():
        revoke_client_tokens(client, reason="client-deleted")
        client.delete()
    audit.record("client_deleted", client_id=client_id)


def is_disabled(client: Any) -> bool:
    return ClientRegistration.objects.filter(application=client, disabled=True).exists()


def touch(client: Application) -> None:
    """Record that the client just got tokens (the admin's "last used")."""
    ClientRegistration.objects.filter(application=client).update(last_used=timezone.now())
