"""Admin: clients with how they were registered, and token families that an operator can revoke."""

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from oauth2_provider import admin as dot_admin

from oauth_server import families
from oauth_server.clients.lifecycle import delete_client, disable_client
from oauth_server.families import revoke_family
from oauth_server.models import ClientRegistration, TokenFamily, UpstreamIdentity
from oauth_server.upstream import sessions as upstream_sessions


class ClientAdmin(dot_admin.ApplicationAdmin):
    """DOT's application admin (secrets hashed, registration source read-only), with how each client came in."""

    list_display = (
        "name",
        "client_id",
        "client_type",
        "registration_source",
        "cimd_host",
        "gate",
        "redirect_uris",
        "created",
        "last_used",
        "enabled",
    )
    list_select_related = ("muster_registration",)
    search_fields = ("name", "client_id")
    ordering = ("-created",)
    actions = ("disable_clients", "delete_clients")

    @admin.display(description="CIMD host")
    def cimd_host(self, client: Any) -> str:
        return urlsplit(client.client_id).hostname or "" if client.registration_source == "cimd" else ""

    @admin.display(description="gate")
    def gate(self, client: Any) -> str:
        registration = getattr(client, "muster_registration", None)
        return registration.get_gate_display() if registration else ""

    @admin.display(description="last used", ordering="muster_registration__last_used")
    def last_used(self, client: Any) -> Any:
        registration = getattr(client, "muster_registration", None)
        return registration.last_used if registration else None

    @admin.display(boolean=True)
    def enabled(self, client: Any) -> bool:
        registration = getattr(client, "muster_registration", None)
        return not (registration and registration.disabled)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        ClientRegistration.objects.get_or_create(application=obj, defaults={"gate": ClientRegistration.Gate.OPERATOR})

    @admin.action(description="Disable the selected clients (their tokens stop working)", permissions=["change"])
    def disable_clients(self, request: HttpRequest, queryset: QuerySet) -> None:
        for client in queryset:
            disable_client(client)
        self.message_user(request, f"Disabled {queryset.count()} clients.", messages.SUCCESS)

    @admin.action(description="Delete the selected clients and their tokens", permissions=["delete"])
    def delete_clients(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.count()
        for client in queryset:
            delete_client(client)
        self.message_user(request, f"Deleted {count} clients.", messages.SUCCESS)


class RefreshTokenAdmin(dot_admin.RefreshTokenAdmin):
    """Individual refresh tokens, findable by family."""

    list_display = ("pk", "user", "application", "token_family", "created", "revoked")
    search_fields = ("=token_family",)


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "active":
            return queryset.filter(live_members__gt=0)
        if self.value() == "revoked":
            return queryset.filter(live_members=0)
        return queryset


@admin.register(TokenFamily)
class TokenFamilyAdmin(admin.ModelAdmin):
    """One row per family; revoking one stops its access tokens at once."""

    list_display = (
        "token_family",
        "user",
        "application",
        "started",
        "last_rotation",
        "generations",
        "active",
        "upstream_expires",
    )
    list_filter = (
        ("application", admin.RelatedOnlyFieldListFilter),
        ("user", admin.RelatedOnlyFieldListFilter),
        StatusFilter,
    )
    list_select_related = ("user", "application")
    search_fields = ("=token_family", "user__username", "application__name", "=application__client_id")
    actions = ("revoke_families", "refresh_upstream_sessions")
    fields = ("token_family", "user", "application", "created", "revoked")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return TokenFamily.objects.heads().order_by("-last_rotation")

    @admin.display(ordering="started")
    def started(self, family: TokenFamily) -> Any:
        return family.started

    @admin.display(ordering="last_rotation", description="last rotation")
    def last_rotation(self, family: TokenFamily) -> Any:
        return family.last_rotation

    @admin.display(ordering="generations")
    def generations(self, family: TokenFamily) -> int:
        return family.generations

    @admin.display(boolean=True, ordering="live_members")
    def active(self, family: TokenFamily) -> bool:
        return family.live_members > 0

    @admin.display(ordering="upstream_expires", description="provider token until")
    def upstream_expires(self, family: TokenFamily) -> Any:
        """When the identity provider's token of this sign-in expires (empty for local accounts)."""
        return family.upstream_expires

    @admin.action(description="Revoke the selected token families", permissions=["change"])
    def revoke_families(self, request: HttpRequest, queryset: QuerySet) -> None:
        families = {family.token_family for family in queryset}
        for family in families:
            revoke_family(family, reason="admin")
        self.message_user(request, f"Revoked {len(families)} token families.", messages.SUCCESS)

    @admin.action(
        description="Refresh the upstream sign-in of the selected families (client tokens unchanged)",
        permissions=["change"],
    )
    def refresh_upstream_sessions(self, request: HttpRequest, queryset: QuerySet) -> None:
        for family in {family.token_family for family in queryset}:
            try:
                families.refresh_upstream_session(family)
            except upstream_sessions.UpstreamSessionEnded:
                self.message_user(request, f"{family}: the provider ended the sign-in; revoked.", messages.WARNING)
            except (families.RefreshSessionError, upstream_sessions.UpstreamUnavailable) as exc:
                self.message_user(request, f"{family}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{family}: upstream sign-in refreshed.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(UpstreamIdentity)
class UpstreamIdentityAdmin(admin.ModelAdmin):
    """Who each user is at the identity provider (read-only: the provider is the source)."""

    list_display = ("subject", "issuer", "user", "user__email", "last_sign_in")
    search_fields = ("=subject", "user__username", "user__email")
    list_select_related = ("user",)
    fields = ("user", "issuer", "subject", "name", "groups", "last_sign_in")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


admin.site.site_header = admin.site.site_title = f"{settings.MUSTER_CONFIG.display_name} administration"
