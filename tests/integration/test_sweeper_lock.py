"""On PostgreSQL the sweeper's lock is a session advisory lock: a dead holder hands over
at once. (On SQLite it is the expiring Lease row, tested in test_recovery.py.)"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from pipelines.engine.lease import SweeperLock

pytestmark = pytest.mark.django_db(transaction=True)


def test_sweeper_lock_has_one_holder_and_passes_on_when_its_connection_dies():
    assert connection.vendor == "postgresql", "run the suite against PostgreSQL"
    results: dict[str, list[bool]] = {"a": [], "b": []}
    a_holds = threading.Event()
    a_gone = threading.Event()

    def holder_a() -> None:
        lock = SweeperLock("a", ttl=30)
        results["a"].append(lock.acquire())
        results["a"].append(lock.acquire())  # re-acquiring while holding it stays true
        a_holds.set()
        a_gone.wait(10)
        connection.close()  # as if the worker died: PostgreSQL drops the lock with it

    def holder_b() -> None:
        lock = SweeperLock("b", ttl=30)
        a_holds.wait(10)
        results["b"].append(lock.acquire())
        a_gone.set()
        deadline = time.monotonic() + 10
        while not lock.acquire() and time.monotonic() < deadline:
            time.sleep(0.05)
        results["b"].append(lock.acquire())
        lock.release()
        connection.close()

    threads = [threading.Thread(target=holder_a), threading.Thread(target=holder_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert results == {"a": [True, True], "b": [False, True]}
