"""PostgreSQL's context writes: one statement each, merged on the server.

A write was a read-modify-write of the whole JSON document under the run's lock: fine
for small contexts, slow for big ones under contention. On PostgreSQL the merge
(``data || new``) and the write-once check (``NOT data ?| keys``) happen in the UPDATE
itself; concurrent writers queue on the context row's lock and PostgreSQL re-checks the
condition against the committed row, so exactly one of two racing writers wins a key.
The history row is inserted by the same statement.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection

from pipelines.values import encode

WRITE_SQL = """
WITH merged AS (
    UPDATE pipelines_runcontext
    SET data = data || %(values)s::jsonb, updated_at = %(now)s::timestamptz
    WHERE run_id = %(run)s::bigint AND NOT (data ?| %(guarded)s::text[])
    RETURNING run_id
)
INSERT INTO pipelines_contextwrite
    (run_id, key, value, execution_id, step, attempt, overwrite, written_at)
SELECT merged.run_id, w.key, w.value, %(execution)s::bigint, %(step)s::text,
       %(attempt)s::integer, w.overwrite, %(now)s::timestamptz
FROM merged, jsonb_to_recordset(%(writes)s::jsonb) AS w(key text, value jsonb, overwrite bool)
RETURNING id
"""


def server_side() -> bool:
    return connection.vendor == "postgresql"


def merge_writes(
    *,
    run_id: int,
    writes: dict[str, tuple[Any, bool]],
    now: datetime,
    execution_id: int | None = None,
    step: str = "",
    attempt: int | None = None,
) -> bool:
    """Apply ``{key: (value, overwrite)}`` atomically with their history rows. False when
    a key written without ``overwrite`` already exists: nothing was written then."""
    guarded = [key for key, (_, overwrite) in writes.items() if not overwrite]
    with connection.cursor() as cursor:
        cursor.execute(
            WRITE_SQL,
            {
                "values": encode({key: value for key, (value, _) in writes.items()}),
                "guarded": guarded,
                "run": run_id,
                "now": now,
                "execution": execution_id,
                "step": step,
                "attempt": attempt,
                "writes": encode(
                    [{"key": k, "value": v, "overwrite": ow} for k, (v, ow) in writes.items()]
                ),
            },
        )
        return cursor.rowcount > 0
