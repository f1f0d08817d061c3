"""Time as the database tells it.

Every staleness decision (is this heartbeat old, is this retry due, has this lease or
this deadline passed) compares two timestamps. Workers, sweepers and web hosts run on
different machines whose clocks disagree, so both sides of every such comparison are
taken from the one clock they all share: the database server's. A timestamp the engine
writes for a later comparison is an SQL expression evaluated by the database, never
``timezone.now()`` of the host that sends it.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import DateTimeField, ExpressionWrapper, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import Now


def now() -> Now:
    """The database's current time (the statement's start on PostgreSQL)."""
    return Now()


def ago(seconds: float) -> Combinable:
    """The database's time ``seconds`` ago."""
    return _shifted(-seconds)


def later(seconds: float) -> Combinable:
    """The database's time ``seconds`` from now."""
    return _shifted(seconds)


def _shifted(seconds: float) -> Combinable:
    return ExpressionWrapper(
        Now() + Value(timedelta(seconds=seconds)), output_field=DateTimeField()
    )
