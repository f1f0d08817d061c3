"""At-most-once step bodies under duplicate and stale deliveries; only the engine's job
function ever runs; racing steps get exactly one winner per context key."""

from __future__ import annotations

import django_rq
import pytest
from rq import Queue
from rq.registry import FailedJobRegistry
from rq.serializers import DefaultSerializer, JSONSerializer

from pipelines.engine.delivery import Delivery, enqueue, job_id
from pipelines.models import (
    ContextWrite,
    JoinBarrier,
    RunStatus,
    StepAttempt,
    StepExecution,
)
from tests.conftest import wait_for
from tests.testapp import pipelines as p

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.portable,
    pytest.mark.redis,
    pytest.mark.workers,
]
WORKER_COUNT = 4


def test_duplicate_delivery_to_two_workers_runs_the_body_once(workers, finished):
    counter = "duplicate-delivery"
    run = p.DuplicatePipeline.trigger({"counter": counter})
    execution = StepExecution.objects.get(run=run)
    # The same job again, while the first copy is (about to be) running on another worker.
    enqueue([Delivery(execution.pk, 1, "pipelines", 60)])
    run = finished(run)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.output == 1
    assert django_rq.get_connection("pipelines").get(f"test:count:{counter}") == b"1"
    assert StepAttempt.objects.filter(execution=execution).count() == 1
    # Both copies really were delivered: two workers picked the job id up.
    wait_for(lambda: workers.output().count(job_id(execution.pk, 1)) >= 2, 10, "second pickup")


def test_steps_racing_for_the_same_keys_get_one_winner_each(workers, finished):
    run = finished(p.RacePipeline.trigger(None), timeout=60)

    assert run.status == RunStatus.SUCCEEDED, run.error
    reports = run.output
    assert len(reports) == 8
    context = run.context.to_dict()
    for key in p.RACE_KEYS:
        winners = [r["me"] for r in reports if key in r["won"]]
        assert winners == [context[key]], (key, winners)
        losers = [r["me"] for r in reports if key in r["lost"]]
        assert len(losers) == 7
    writes = ContextWrite.objects.filter(run=run, key__startswith="race-")
    assert writes.count() == len(p.RACE_KEYS)  # every key written once, by its winner
    assert StepExecution.objects.filter(run=run, step="Gather").count() == 1


def test_a_join_fires_exactly_once_when_branches_finish_together(workers, finished):
    runs = [p.ExpandPipeline.trigger({"count": 40}) for _ in range(3)]

    for run in runs:
        run = finished(run, timeout=90)
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert run.output == [i * i for i in range(40)]
        assert StepExecution.objects.filter(run=run, step="Gather").count() == 1
        barrier = JoinBarrier.objects.get(run=run)
        assert (barrier.arrived, barrier.expected) == (40, 40)
        assert barrier.fired_at is not None


def test_planted_jobs_naming_other_functions_or_pickles_never_run(workers, finished):
    conn = django_rq.get_connection("pipelines")
    json_queue = Queue("pipelines", connection=conn, serializer=JSONSerializer)
    planted = json_queue.enqueue("tests.testapp.pipelines.bump", "planted-json")
    pickle_queue = Queue("pipelines", connection=conn, serializer=DefaultSerializer)
    pickled = pickle_queue.enqueue("tests.testapp.pipelines.bump", "planted-pickle")

    # The workers are still healthy afterwards and run real steps.
    run = finished(p.ChainPipeline.trigger({"n": 1}))
    assert run.status == RunStatus.SUCCEEDED, run.error

    failed = FailedJobRegistry("pipelines", connection=conn, serializer=JSONSerializer)
    wait_for(lambda: planted.id in failed.get_job_ids(), 10, "planted job to fail")
    assert conn.get("test:count:planted-json") is None
    assert conn.get("test:count:planted-pickle") is None
    planted_job = json_queue.fetch_job(planted.id)
    assert "UnsafeJobError" in (planted_job.latest_result().exc_string or "")
    wait_for(lambda: pickled.id in failed.get_job_ids(), 10, "pickled job to fail")
    assert pickled.id not in json_queue.job_ids


def test_planted_jobs_cannot_smuggle_callbacks_or_webhooks(workers, finished):
    import http.server
    import threading

    from rq import Callback
    from rq.webhook import Webhook

    from pipelines.engine.delivery import ENGINE_FUNCTION

    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        conn = django_rq.get_connection("pipelines")
        queue = Queue("pipelines", connection=conn, serializer=JSONSerializer)
        callback = Callback("tests.testapp.pipelines.planted_callback")
        with_callbacks = queue.enqueue(
            ENGINE_FUNCTION, 0, 1, on_success=callback, on_failure=callback, on_stopped=callback
        )
        with_webhook = queue.enqueue(
            "os.getcwd", webhooks=[Webhook(url, "failed"), Webhook(url, "finished")]
        )
        failed = FailedJobRegistry("pipelines", connection=conn, serializer=JSONSerializer)
        wait_for(
            lambda: {with_callbacks.id, with_webhook.id} <= set(failed.get_job_ids()),
            15,
            "planted jobs to be refused",
        )
        # A real run afterwards proves the workers went on; give hooks time to (not) fire.
        assert finished(p.ChainPipeline.trigger({"n": 1})).status == RunStatus.SUCCEEDED

        assert conn.get("test:count:planted-callback") is None
        assert requests == []
        result = queue.fetch_job(with_callbacks.id).latest_result()
        assert "with on_success, on_failure, on_stopped" in (result.exc_string or "")
    finally:
        server.shutdown()
