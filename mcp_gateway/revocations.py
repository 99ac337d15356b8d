"""Revocations recorded in the database with the revocation itself, and each worker's view of the recent ones.

The Redis tombstone (`bearer.invalidate`) is the fast path; these rows are what makes a revocation hold when
the tombstone cannot be written (Redis paused or down): every worker reads the rows of the last few seconds
at most every POLL_SECONDS and refuses those tokens whatever its caches say.
"""

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from channels.db import database_sync_to_async
from django.db import DatabaseError
from django.utils import timezone

from infra.single_flight import SingleFlight
from mcp_gateway.models import RecentRevocation

log = logging.getLogger("muster.mcp")
POLL_SECONDS = 0.5  # with the in-process cache's half second, a revocation holds everywhere within a second
OVERLAP_SECONDS = 10  # rows are read again this long: late commits and clocks a little apart are not missed
REMEMBER_SECONDS = 150  # longer than any shared cache entry (bearer.SHARED_SECONDS) can outlive a revocation
KEEP_SECONDS = 600  # rows older than this are deleted by the next revocation


def record(token_checksums: Iterable[str]) -> None:
    """In the revoking transaction: these tokens are revoked now (and rows nobody reads any more go)."""
    now = timezone.now()
    rows = [RecentRevocation(token_checksum=token_checksum, revoked_at=now) for token_checksum in token_checksums]
    if rows:
        RecentRevocation.objects.bulk_create(rows)
        RecentRevocation.objects.filter(revoked_at__lt=now - timedelta(seconds=KEEP_SECONDS)).delete()


class RecentRevocations:
    """One worker's view: the tokens revoked in the last REMEMBER_SECONDS, read again every POLL_SECONDS."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._revoked: dict[str, float] = {}  # checksum -> when (clock) this worker may forget it
        self._read_at: float | None = None
        self._since = timezone.now() - timedelta(seconds=REMEMBER_SECONDS)  # a (re)started worker reads back
        self._reads: SingleFlight[None] = SingleFlight()

    async def revoked(self, token_checksum: str) -> bool:
        """Whether the database says this token was revoked lately, as read at most POLL_SECONDS ago."""
        if self._read_at is None or self.clock() - self._read_at >= POLL_SECONDS:
            await self._reads.run(None, self._read)  # the requests that find the view old together share one read
        return token_checksum in self._revoked

    async def _read(self) -> None:
        """The rows since the last read (less the overlap) into this worker's view; forget what is old enough."""
        now, started = self.clock(), timezone.now()
        try:
            checksums = await _revoked_since(self._since)
        except DatabaseError:
            # Revoking needs the database too: while it is away nothing new can be revoked. Retried next poll.
            log.warning("could not read recent revocations; retrying in %s s", POLL_SECONDS)
        else:
            self._since = started - timedelta(seconds=OVERLAP_SECONDS)
            for token_checksum in checksums:
                self._revoked.setdefault(token_checksum, now + REMEMBER_SECONDS)
            for token_checksum in [key for key, until in self._revoked.items() if until <= now]:
                del self._revoked[token_checksum]
        finally:
            self._read_at = now


@database_sync_to_async
def _revoked_since(since: datetime) -> list[str]:
    return list(RecentRevocation.objects.filter(revoked_at__gte=since).values_list("token_checksum", flat=True))


recent = RecentRevocations()  # this worker's
