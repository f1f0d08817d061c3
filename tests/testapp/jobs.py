"""Ordinary django-rq jobs of a host project, beside its pipelines."""

from __future__ import annotations

import datetime
from pathlib import Path

from django_rq import job


def record(path: str, day: datetime.date, label: str) -> str:
    """Takes a ``date``: only a pickle queue can carry it."""
    Path(path).write_text(f"{label} {day.isoformat()}")
    return label


@job("default")
def record_json(path: str, label: str) -> str:
    Path(path).write_text(label)
    return label
