"""A named lease in the database: one holder at a time across all machines."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Q

from pipelines.engine import clock
from pipelines.models import Lease


def acquire(name: str, holder: str, ttl: float) -> bool:
    """Take or extend the lease; True if ``holder`` holds it for the next ``ttl`` seconds
    (by the database's clock, which every contender shares)."""
    taken = Lease.objects.filter(
        Q(holder=holder) | Q(expires_at__lt=clock.now()), name=name
    ).update(holder=holder, expires_at=clock.later(ttl))
    if taken:
        return True
    try:
        with transaction.atomic():
            Lease.objects.create(name=name, holder=holder, expires_at=clock.later(ttl))
    except IntegrityError:
        return False  # someone else holds it
    return True


def release(name: str, holder: str) -> None:
    Lease.objects.filter(name=name, holder=holder).delete()


# An arbitrary constant naming the sweeper's advisory lock (64-bit).
SWEEPER_LOCK_KEY = 7_305_402_117_552_013_419


class SweeperLock:
    """Who may sweep. On PostgreSQL a session-level advisory lock: it is released the
    instant its holder's connection dies (a killed worker hands over at once, with no
    expiry to wait for). Elsewhere (SQLite, one machine) an expiring Lease row."""

    def __init__(self, holder: str, ttl: float) -> None:
        self.holder = holder
        self.ttl = ttl

    def acquire(self) -> bool:
        from django.db import connection

        if connection.vendor != "postgresql":
            return acquire("pipelines-sweeper", self.holder, self.ttl)
        with connection.cursor() as cursor:
            # Advisory locks stack per session: only take it if this session lacks it.
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND granted "
                "AND ((classid::bigint << 32) | objid::bigint) = %s)",
                [SWEEPER_LOCK_KEY],
            )
            if cursor.fetchone()[0]:
                return True
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [SWEEPER_LOCK_KEY])
            return bool(cursor.fetchone()[0])

    def release(self) -> None:
        from django.db import connection

        if connection.vendor != "postgresql":
            release("pipelines-sweeper", self.holder)
        # On PostgreSQL closing the connection (the caller does) releases the lock.
