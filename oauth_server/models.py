"""Our models: token families (a proxy over DOT's refresh tokens), client registrations, refresh grace copies."""

from django.conf import settings
from django.db import models
from django.db.models import Count, Max, Min, OuterRef, Q, Subquery
from oauth2_provider.models import RefreshToken
from oauth2_provider.settings import oauth2_settings


class TokenFamilyQuerySet(models.QuerySet):
    def heads(self) -> "TokenFamilyQuerySet":
        """One row per family, annotated in the same single query whatever the number of families."""
        family = RefreshToken.objects.filter(token_family=OuterRef("token_family")).order_by()
        newest = family.order_by("-created", "-pk").values("pk")[:1]
        per_family = family.values("token_family")
        return (
            self.exclude(token_family=None)
            .filter(pk=Subquery(newest))
            .annotate(
                started=Subquery(per_family.annotate(v=Min("created")).values("v")),
                last_rotation=Subquery(per_family.annotate(v=Max("created")).values("v")),
                generations=Subquery(per_family.annotate(v=Count("pk")).values("v")),
                live_members=Subquery(per_family.annotate(v=Count("pk", filter=Q(revoked__isnull=True))).values("v")),
                upstream_expires=Subquery(
                    UpstreamSession.objects.filter(token_family=OuterRef("token_family")).values("expires_at")[:1]
                ),
            )
        )


class TokenFamily(RefreshToken):
    """A sign-in of one user in one client, followed through every refresh-token rotation."""

    objects = TokenFamilyQuerySet.as_manager()

    class Meta:
        proxy = True
        verbose_name = "token family"
        verbose_name_plural = "token families"


class ClientRegistration(models.Model):
    """How a client came to exist and how it is used: the gate that let it in, who registered it, last use."""

    class Gate(models.TextChoices):
        OPERATOR = "operator", "operator (admin or manage.py)"
        PUBLIC = "public", "open registration"
        TOKEN = "token", "registration token"
        TRUSTED_SCHEME = "trusted-scheme", "trusted redirect scheme"
        TRUSTED_REDIRECT = "trusted-redirect", "trusted redirect URI"
        CIMD = "cimd", "client metadata document"

    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE, related_name="muster_registration"
    )
    gate = models.CharField(max_length=32, choices=Gate.choices)
    # The registering IP's rate-limit bucket, hashed: enough to count clients per IP, never the address.
    registered_from = models.CharField(max_length=16, blank=True, db_index=True)
    last_used = models.DateTimeField(null=True, blank=True)
    disabled = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"registration of client #{self.application_id}"


class UpstreamIdentity(models.Model):
    """Who a user is at the identity provider: matched by (issuer, subject), never by email alone."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upstream_identity")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    groups = models.JSONField(default=list, blank=True)
    last_sign_in = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="upstream_identity_issuer_subject")]
        verbose_name_plural = "upstream identities"

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"

    @property
    def sealing_owner(self) -> str:
        return f"{self.issuer}|{self.subject}"


class UpstreamSession(models.Model):
    """The provider's tokens of one sign-in, encrypted: held by its authorization code, then by its token family."""

    identity = models.ForeignKey(UpstreamIdentity, on_delete=models.CASCADE, related_name="sessions")
    grant = models.OneToOneField(
        oauth2_settings.GRANT_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    token_family = models.UUIDField(null=True, blank=True, unique=True)
    sealed_tokens = models.BinaryField()
    expires_at = models.DateTimeField(help_text="When the provider's access token expires.")
    created = models.DateTimeField(auto_now_add=True)
    refreshed = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"upstream session of {self.identity}"


class RefreshGraceCopy(models.Model):
    """A rotated refresh's response, sealed under the old token: written in the rotation's own transaction."""

    old_token_checksum = models.CharField(max_length=64, primary_key=True)
    client_id = models.CharField(max_length=255)
    sealed = models.BinaryField()
    expires = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"grace copy of refresh token {self.old_token_checksum[:8]}…"
