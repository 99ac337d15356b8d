"""The gateway's one table: recent access-token revocations, the database's word that every worker reads."""

from django.db import models


class RecentRevocation(models.Model):
    """An access token deleted before its expiry, kept a few minutes so no worker's cache can outlive it."""

    token_checksum = models.CharField(max_length=64)
    revoked_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.token_checksum[:12]} revoked at {self.revoked_at.isoformat()}"
