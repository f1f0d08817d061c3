"""Every bad input of the security probe, answered: 400 or 404 with a message on the
dashboard, a message and exit status 1 from the command line, InputValueError from the
services; never a 500 or a traceback. Runs on PostgreSQL and on SQLite (portable)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from pipelines.conf import PORTABLE_MAX_VALUE_DEPTH
from pipelines.exceptions import InputValueError
from pipelines.services import run_cancel, run_send_event, run_trigger
from tests.helpers.inprocess import drive
from tests.helpers.procs import ROOT, worker_env
from tests.testapp import fault_pipelines as f
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.portable]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


LIMIT = PORTABLE_MAX_VALUE_DEPTH  # the default PIPELINES_MAX_VALUE_DEPTH


@pytest.fixture
def web(redis_conn) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(User.objects.create_superuser("root", "", "pw"))
    return client


@pytest.fixture
def waiting(redis_conn) -> Any:
    run = drive(f.ApprovalPipeline.trigger({}))
    assert run.status == "waiting"
    return run


# case -> (method, url (run = the waiting run's id), data, status, message in the page)
DASHBOARD = {
    "q of non-ASCII digits": ("get", "/pipelines/runs/?q=%C2%B2", {}, 200, "No runs match"),
    "q with NUL": ("get", "/pipelines/runs/?q=%00", {}, 400, "q: NUL character"),
    "q key=value with NUL": ("get", "/pipelines/runs/?q=k%00=1", {}, 400, "q: NUL character"),
    "pipeline with NUL": ("get", "/pipelines/runs/?pipeline=a%00", {}, 400, "pipeline: NUL"),
    "since on February 30th": (
        "get",
        "/pipelines/runs/?since=2024-02-30T00:00:00",
        {},
        400,
        "since must be an ISO date-time",
    ),
    "since at offset +99:00": (
        "get",
        "/pipelines/runs/?since=2024-01-01T00:00:00%2B99:00",
        {},
        400,
        "since must be an ISO date-time",
    ),
    "since out of range": (
        "get",
        "/pipelines/runs/?since=0001-01-01T00:00:00%2B01:00",
        {},
        400,
        "since is out of range",
    ),
    "after of non-ASCII digits": (
        "get",
        "/pipelines/runs/{run}/?after=%C2%B2",
        {},
        400,
        "after must be an id made of the digits 0-9",
    ),
    "after of Arabic-Indic digits": (
        "get",
        "/pipelines/runs/{run}/?after=%D9%A1",
        {},
        400,
        "after must be an id made of the digits 0-9",
    ),
    "run id beyond 64 bits": ("get", "/pipelines/runs/99999999999999999999999/", {}, 404, ""),
    "unknown run": ("get", "/pipelines/runs/123456789/live/", {}, 404, ""),
    "event payload 5,000 deep": (
        "post",
        "/pipelines/runs/{run}/event/",
        {"name": "approved", "payload": nested(5000)},
        400,
        # Python 3.11's parser gives up first ("nested too deeply"); 3.13's parses it, and
        # the depth limit refuses it ("nested deeper than 29 levels").
        "nested ",
    ),
    "event payload one level too deep": (
        "post",
        "/pipelines/runs/{run}/event/",
        {"name": "approved", "payload": nested(LIMIT + 1)},
        400,
        f"nested deeper than {LIMIT} levels",
    ),
    "event name with NUL": (
        "post",
        "/pipelines/runs/{run}/event/",
        {"name": "appr\x00oved", "payload": "null"},
        400,
        "event name: NUL character",
    ),
    "event payload not JSON": (
        "post",
        "/pipelines/runs/{run}/event/",
        {"name": "approved", "payload": "{oops"},
        400,
        "The payload is not valid JSON",
    ),
    "cancel reason with NUL": (
        "post",
        "/pipelines/runs/{run}/cancel/",
        {"reason": "because\x00"},
        400,
        "reason: NUL character",
    ),
}


@pytest.mark.parametrize("case", DASHBOARD)
def test_dashboard_answers_bad_input(web, waiting, case):
    method, url, data, status, message = DASHBOARD[case]
    response = getattr(web, method)(url.format(run=waiting.pk), data)

    assert response.status_code == status, response.content[:500]
    html = response.content.decode()
    assert message in html
    assert "Traceback" not in html
    waiting.refresh_from_db()
    assert waiting.status == "waiting"  # nothing was done


def test_exactly_the_depth_limit_passes_the_event_form(web, waiting):
    response = web.post(
        reverse("pipelines:send-event", args=[waiting.pk]),
        {"name": "approved", "payload": '{"by": ' + nested(LIMIT - 1) + "}"},
    )
    assert response.status_code == 302
    waiting.refresh_from_db()
    assert waiting.status == "running"


@pytest.mark.parametrize(
    "url",
    [
        "/admin/pipelines/pipelinerun/?status=%00",
        "/admin/pipelines/pipelinerun/?pipeline=a%00",
        "/admin/pipelines/stepexecution/?run__pipeline=%00",
        "/admin/pipelines/contextwrite/?q=%00",
    ],
)
def test_admin_filters_answer_bad_input(web, url):
    response = web.get(url)

    assert response.status_code == 400
    assert "NUL character" in response.content.decode()


def pipelines_command(*args: bytes | str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "manage.py", "pipelines", *args],
        cwd=ROOT,
        env=worker_env(),
        capture_output=True,
        timeout=120,
    )


# case -> (arguments, message on stderr); bytes arguments are not valid UTF-8, so Python
# reads them as lone surrogates.
COMMAND = {
    "input 5,000 deep": (
        ["trigger", "ChainPipeline", "--input", nested(5000)],
        "nested ",  # as for the event payload above: which refusal depends on the Python
    ),
    "input one level too deep": (
        ["trigger", "ChainPipeline", "--input", nested(LIMIT + 1)],
        f"nested deeper than {LIMIT} levels",
    ),
    "idempotency key with a lone surrogate": (
        ["trigger", "ChainPipeline", "--idempotency-key", b"k\xff"],
        "idempotency_key: lone surrogate",
    ),
    "run id of Arabic-Indic digits": (
        ["show", "\u0661"],
        "RUN must be an id made of the digits 0-9",
    ),
    "run id with an underscore": (["show", "8_0"], "RUN must be an id made of the digits 0-9"),
    "run id beyond 64 bits": (["show", "9" * 30], "RUN must be an id made of the digits 0-9"),
    "limit of full-width digits": (["runs", "--limit", "\uff18"], "--limit must be a whole number"),
    "pipeline filter with a lone surrogate": (["runs", "--pipeline", b"\xff"], "--pipeline: lone"),
    "reason with a lone surrogate": (["cancel", "{run}", "--reason", b"\xfe"], "reason: lone"),
    "event name with a lone surrogate": (["send-event", "{run}", b"a\xff"], "event name: lone"),
}


@pytest.mark.parametrize("case", COMMAND)
def test_command_answers_bad_input_with_exit_status_1(waiting, case):
    args, message = COMMAND[case]
    args = [a.format(run=waiting.pk) if isinstance(a, str) else a for a in args]
    done = pipelines_command(*args)

    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert message in stderr
    assert "Traceback" not in stderr
    waiting.refresh_from_db()
    assert waiting.status == "waiting"


def test_command_escapes_terminal_controls_in_keys_values_and_errors(redis_conn):
    hostile = "\x1b[2J\x1b]0;pwned\x07\x9b31m\u202e"
    run = drive(p.FailingPipeline.trigger({"n": 1}))
    run.context.set(hostile, hostile)
    for args in (["show", str(run.pk)], ["show", str(run.pk), "--json"], ["runs"]):
        done = pipelines_command(*args)
        out = done.stdout.decode()
        assert done.returncode == 0, done.stderr
        for control in ("\x1b", "\x07", "\x9b", "\u202e"):
            assert control not in out, (args, out)
    assert (
        "\\u001b[2J\\u001b]0;pwned\\u0007" in pipelines_command("show", str(run.pk)).stdout.decode()
    )
    unknown = pipelines_command("trigger", "Nope\x1b[2J")
    assert unknown.returncode == 1
    assert "\x1b" not in unknown.stderr.decode()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: run_trigger(pipeline="ChainPipeline", idempotency_key="a\x00b"), "NUL"),
        (lambda: run_trigger(pipeline="ChainPipeline", idempotency_key="x\ud800"), "surrogate"),
        (lambda: run_trigger(pipeline="ChainPipeline", idempotency_key="k" * 256), "1 to 255"),
        (
            lambda: run_trigger(pipeline="ChainPipeline", input=json.loads(nested(LIMIT + 1))),
            f"{LIMIT} levels",
        ),
    ],
)
def test_services_refuse_bad_strings_before_the_database_sees_them(redis_conn, call, message):
    with pytest.raises(InputValueError, match=message):
        call()


def test_event_names_and_reasons_are_checked_like_every_string(waiting):
    with pytest.raises(InputValueError, match="event name: NUL character"):
        run_send_event(run_id=waiting.pk, name="a\x00", payload=None)
    with pytest.raises(InputValueError, match="event name: lone surrogate"):
        run_send_event(run_id=waiting.pk, name="\udcff", payload=None)
    with pytest.raises(InputValueError, match="reason: NUL character"):
        run_cancel(run_id=waiting.pk, reason="\x00")
    with pytest.raises(InputValueError, match="reason must be 1 to 2000 characters"):
        run_cancel(run_id=waiting.pk, reason="")
    waiting.refresh_from_db()
    assert waiting.status == "waiting"
