"""Database and Redis outages: the exceptions that mean one, and the 503 temporarily_unavailable that answers it."""

from django.db import InterfaceError, OperationalError
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from infra.errors import OAuthError, describe

# Long enough for a restart or a failover, short enough that clients come back soon after.
RETRY_AFTER_SECONDS = 5
OUTAGES = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError, ConnectionInterrupted)
UNAVAILABLE = OAuthError(
    "temporarily_unavailable", describe("temporarily_unavailable"), 503, retry_after=RETRY_AFTER_SECONDS
)


def is_outage(exception: BaseException | None) -> bool:
    """True for an unreachable or failing database or Redis (a lost connection, a timeout, a full pool)."""
    return isinstance(exception, OUTAGES)
