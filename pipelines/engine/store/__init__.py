"""Where the engine's rows are written: one interface, chosen here once per database.

``get_store()`` gives the PostgreSQL store (named SQL, one statement per frequent commit)
on PostgreSQL and the portable ORM store everywhere else. ``PIPELINES_STORE = "orm"``
forces the portable store (the tests run both on the same scenarios).
"""

from __future__ import annotations

from django.db import connection

from pipelines.conf import get_settings
from pipelines.engine.store.orm import OrmStore, Writer
from pipelines.engine.store.postgres import PostgresStore

_STORES: dict[str, OrmStore] = {"orm": OrmStore(), "postgresql": PostgresStore()}


def get_store() -> OrmStore:
    forced = get_settings().store
    if forced:
        return _STORES[forced]
    return _STORES["postgresql" if connection.vendor == "postgresql" else "orm"]


__all__ = ["OrmStore", "PostgresStore", "Writer", "get_store"]
