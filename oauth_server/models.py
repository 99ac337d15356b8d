"""Token families as rows: a proxy over DOT's refresh tokens, one row (the newest member) per family."""

from django.db import models
from django.db.models import Count, Max, Min, OuterRef, Q, Subquery
from oauth2_provider.models import RefreshToken


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
            )
        )


class TokenFamily(RefreshToken):
    """A sign-in of one user in one client, followed through every refresh-token rotation."""

    objects = TokenFamilyQuerySet.as_manager()

    class Meta:
        proxy = True
        verbose_name = "token family"
        verbose_name_plural = "token families"
