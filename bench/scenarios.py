"""Context contention, trigger throughput and the dashboard at scale."""

from __future__ import annotations

import statistics
import sys
import time

from bench.env import BenchEnv
from tests.helpers.procs import spawn_json


def contention(env: BenchEnv, mode: str, processes: int, keys: int) -> float:
    """Seconds for ``processes`` x ``keys`` distinct new keys into one run's context
    (every one must be stored, none overwritten)."""
    from pipelines.models import ContextWrite, PipelineRun, RunContext

    run = PipelineRun.objects.create(pipeline="Chain10", input=None, status="running")
    RunContext.objects.create(run=run, data={})
    start_at = time.time() + 3
    command = [sys.executable, "-m", "bench.contention_proc", mode, str(run.pk)]
    results = spawn_json(
        [[*command, str(i), str(keys), str(start_at)] for i in range(processes)],
        env.env(),
        timeout=600,
    )
    elapsed = max(r["ended"] for r in results) - min(r["started"] for r in results)
    data = RunContext.objects.get(pk=run.pk).data
    expected = {f"p{i}-k{k}" for i in range(processes) for k in range(keys)}
    assert set(data) == expected, "a key was lost"
    assert all(
        data[f"p{i}-k{k}"] == {"writer": i, "i": k} for i in range(processes) for k in range(keys)
    ), "a value was overwritten"
    assert sum(r["written"] for r in results) == len(expected)
    if mode == "engine":
        assert ContextWrite.objects.filter(run=run).count() == len(expected)
    return elapsed


def triggers_python(count: int) -> float:
    from bench.pipelines import Chain10

    start = time.perf_counter()
    for i in range(count):
        Chain10.trigger({"i": i})
    return time.perf_counter() - start


def triggers_view(count: int) -> float:
    """Through the demo's order view: a form POST, the trigger in the request's
    transaction, the redirect."""
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    user, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True})
    user.user_permissions.add(Permission.objects.get(codename="add_pipelinerun"))
    client = Client()
    client.force_login(user)
    form = {"customer_id": 7, "skus": "A1, B2", "price": 100}
    start = time.perf_counter()
    for _ in range(count):
        response = client.post("/demo/", form)
        assert response.status_code == 302, response.status_code
    return time.perf_counter() - start


def dashboard(steps: int, keys: int, repeat: int) -> tuple[float, int, float, int]:
    """Median server time and query count of the run page for a big and a tiny run."""
    from django.contrib.auth.models import Permission, User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from tests.helpers.inprocess import big_run

    user, _ = User.objects.get_or_create(username="bench-staff", defaults={"is_staff": True})
    user.user_permissions.add(Permission.objects.get(codename="view_pipelinerun"))
    client = Client()
    client.force_login(user)
    figures: list[float] = []
    for run in (big_run(steps=steps, keys=keys), big_run(steps=3, keys=2)):
        url = f"/pipelines/runs/{run.pk}/"
        client.get(url)  # warm
        times = []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                assert client.get(url).status_code == 200
                times.append(time.perf_counter() - start)
        figures += [statistics.median(times), len(queries)]
    return figures[0], int(figures[1]), figures[2], int(figures[3])
