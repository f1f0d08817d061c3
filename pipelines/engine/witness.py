"""Whether silence means death: the database has been reachable long enough.

A running step is reclaimed when its heartbeat is older than the reclaim time. That
holds only if its worker could reach the database all that while: after an outage or a
failover, every heartbeat is old, and every step would be reclaimed the moment the
database returns. So every sweeper thread (one per worker) records each time it reaches
the database, in one row, by the database's clock. A gap in that record longer than a
heartbeat interval (or two sweep intervals) means the database was away for everyone,
or no worker ran at all: the record starts over, and nothing is reclaimed until it is
the reclaim time old. The record is shared, so a sweeper that has just started (or just
taken over the lease) inherits it instead of waiting.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Case, F, When

from pipelines.conf import get_settings
from pipelines.engine import clock
from pipelines.models import Reachability

NAME = "database"


def witness() -> bool:
    """Record that this process reaches the database now. True if it has been reached
    without a gap for at least the reclaim time (silent steps may be reclaimed)."""
    conf = get_settings()
    gap = max(conf.heartbeat_interval, 2 * conf.sweep_interval)
    record = Reachability.objects.filter(pk=NAME)
    seen = record.update(
        since=Case(When(seen_at__lt=clock.ago(gap), then=clock.now()), default=F("since")),
        seen_at=clock.now(),
    )
    if not seen:
        try:
            with transaction.atomic():
                Reachability.objects.create(name=NAME, seen_at=clock.now(), since=clock.now())
        except IntegrityError:
            pass  # another sweeper made it first
    return record.filter(since__lte=clock.ago(conf.reclaim_after)).exists()
