"""One writer process of the contention benchmark: ``engine`` writes through
``run.context.set``; ``raw`` runs the single-statement SQL baseline. Prints JSON."""

from __future__ import annotations

import json
import os
import sys
import time


def main(mode: str, run_id: int, index: int, keys: int, start_at: float) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from django.db import connection

    from pipelines.exceptions import OverwriteError
    from pipelines.models import PipelineRun

    run = PipelineRun.objects.get(pk=run_id)
    connection.ensure_connection()
    written = refused = 0
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    for i in range(keys):
        key, value = f"p{index}-k{i}", {"writer": index, "i": i}
        if mode == "engine":
            try:
                run.context.set(key, value)
                written += 1
            except OverwriteError:
                refused += 1
        else:
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE pipelines_runcontext SET data = data || jsonb_build_object(%s::text, "
                    "%s::jsonb) WHERE run_id = %s::bigint AND NOT data ? %s::text",
                    [key, json.dumps(value), run_id, key],
                )
                written += cursor.rowcount
    print(
        json.dumps(
            {"started": started, "ended": time.time(), "written": written, "refused": refused}
        )
    )


if __name__ == "__main__":
    mode, run_id, index, keys, start_at = sys.argv[1:]
    main(mode, int(run_id), int(index), int(keys), float(start_at))
