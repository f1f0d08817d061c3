"""A named lease in the database: one holder at a time across all machines."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from pipelines.models import Lease


def acquire(name: str, holder: str, ttl: float) -> bool:
    """Take or extend the lease; True if ``holder`` holds it for the next ``ttl`` seconds."""
    now = timezone.now()
    expires = now + timedelta(seconds=ttl)
    taken = Lease.objects.filter(Q(holder=holder) | Q(expires_at__lt=now), name=name).update(
        holder=holder, expires_at=expires
    )
    if taken:
        return True
    try:
        with transaction.atomic():
            Lease.objects.create(name=name, holder=holder, expires_at=expires)
    except IntegrityError:
        return False  # someone else holds it
    return True


def release(name: str, holder: str) -> None:
    Lease.objects.filter(name=name, holder=holder).delete()
