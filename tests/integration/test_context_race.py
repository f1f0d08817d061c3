"""Write-once under real concurrency: many processes, one run, the same new keys."""

from __future__ import annotations

import time

import pytest

from tests.helpers.procs import spawn_json

pytestmark = pytest.mark.django_db(transaction=True)

PROCESSES = 8
KEYS = [f"key-{i}" for i in range(12)]


@pytest.mark.parametrize("database", ["postgres", "sqlite", "mariadb"])
def test_racing_processes_get_exactly_one_winner_per_key(on_database, database):
    call = on_database(database)
    run_id = call("create_run")["run_id"]
    start_at = str(time.time() + 3)  # every process waits for the same instant
    results = spawn_json(
        [
            call.command("race", str(run_id), str(i), start_at, ",".join(KEYS))
            for i in range(PROCESSES)
        ],
        call.env,
    )

    assert [r["errors"] for r in results] == [[]] * PROCESSES
    winners: dict[str, list[int]] = {key: [] for key in KEYS}
    for index, result in enumerate(results):
        for key in result["won"]:
            winners[key].append(index)
        # Every process saw every key exactly once: won or refused, never lost silently.
        assert sorted(result["won"] + [k for k, _ in result["lost"]]) == sorted(KEYS)
        for key, message in result["lost"]:
            assert f"context[{key!r}] is already set (written by outside a step at" in message
    assert all(len(w) == 1 for w in winners.values()), winners

    # The stored context agrees with the winners, and the history has one write per key.
    stored = call("context", str(run_id))
    expected = {key: f"process-{w[0]}" for key, w in winners.items()}
    assert stored["data"] == expected
    assert stored["writes"] == sorted([key, value] for key, value in expected.items())
