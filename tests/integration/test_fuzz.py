"""Fuzzing what people can type: the dashboard's query parameters and action forms, and the
command line's arguments. Whatever the input: no 500, no traceback, no exception other
than the command's own error (exit status 1), and nothing that drives a terminal.
Runs on PostgreSQL and on SQLite (portable)."""

from __future__ import annotations

import io
import re
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.inprocess import drive
from tests.testapp import fault_pipelines as f
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.portable]

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ANSWERS = {200, 302, 400, 404, 405}
TERMINAL_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

# Text that is sometimes almost right: digits of every script, dates, offsets, JSON, NUL.
TRICKY = [
    "",
    "1",
    "0",
    "-1",
    "²",
    "\u0661",  # Arabic-Indic one
    "\uff18",  # full-width eight
    "8_0",
    " 7 ",
    "1e3",
    "9" * 25,
    "\x00",
    "k\x00=1",
    "a=b=c",
    "=",
    "1h",
    "24h",
    "2024-02-30T00:00:00",
    "2024-01-01T00:00:00+99:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-23:59",
    "2024-01-01",
    "[" * 5000,
    "[" * 65 + "]" * 65,
    '{"a": NaN}',
    "\x1b[2J\x1b]0;pwned\x07",
    "\ud800",
]
tricky = st.sampled_from(TRICKY)
text = st.one_of(tricky, st.text(max_size=40), st.text(alphabet="0123456789=:+-T ", max_size=30))
QUERY_NAMES = ["q", "status", "pipeline", "since", "page", "after", "steps", "keys"]
PAGES = ["runs", "run", "live", "context", "overview"]
ACTIONS = ["cancel", "retry", "rerun", "event"]
SUBCOMMANDS = ["list", "graph", "trigger", "runs", "show", "cancel", "retry", "resume", "rerun"]
SUBCOMMANDS += ["send-event"]


@pytest.fixture
def site(redis_conn) -> dict[str, Any]:
    client = Client(raise_request_exception=False)
    client.force_login(User.objects.create_superuser("root", "", "pw"))
    done = drive(p.ChainPipeline.trigger({"n": 1}, idempotency_key="order-1"))
    done.context.set("customer_id", 7)
    waiting = drive(f.ApprovalPipeline.trigger({}))
    return {"client": client, "runs": [done.pk, waiting.pk]}


def _clean(value: str) -> str:
    # The test client encodes as UTF-8, which a lone surrogate cannot be; raw bytes are
    # fuzzed separately.
    return value.encode("utf-8", "replace").decode()


def _answered(response: Any) -> None:
    assert response.status_code in ANSWERS, (response.status_code, response.content[:300])
    assert b"Traceback" not in response.content


def _path(page: str, run: int) -> str:
    return {
        "runs": "/pipelines/runs/",
        "run": f"/pipelines/runs/{run}/",
        "live": f"/pipelines/runs/{run}/live/",
        "context": f"/pipelines/runs/{run}/context/",
        "overview": "/pipelines/",
    }[page]


def test_every_tricky_value_in_every_query_parameter_of_every_page(site):
    client, (done, _) = site["client"], site["runs"]
    for page in PAGES:
        for name in QUERY_NAMES:
            for value in TRICKY:
                _answered(client.get(_path(page, done), {name: _clean(value)}))


ADMIN_LISTS = ["pipelinerun", "stepexecution", "contextwrite"]
ADMIN_PARAMS = ["q", "status", "pipeline", "run__pipeline", "created_at__gte", "o", "p", "kind"]


def test_every_tricky_value_in_every_admin_list_parameter(site):
    client = site["client"]
    for model in ADMIN_LISTS:
        for name in ADMIN_PARAMS:
            for value in TRICKY:
                response = client.get(f"/admin/pipelines/{model}/", {name: _clean(value)})
                _answered(response)


@FUZZ
@given(
    page=st.sampled_from(PAGES),
    params=st.dictionaries(st.sampled_from(QUERY_NAMES), text, max_size=4),
    raw=st.binary(max_size=30),
)
def test_dashboard_query_parameters(site, page, params, raw):
    client, (done, _) = site["client"], site["runs"]
    path = _path(page, done)
    _answered(client.get(path, {k: _clean(v) for k, v in params.items()}))
    # Undecodable bytes and stray separators, as a browser or a script may send them.
    _answered(client.get(f"{path}?q={quote_from_bytes(raw)}&since={quote_from_bytes(raw)}"))


def test_every_tricky_value_in_every_field_of_every_action_form(site):
    client, (done, waiting) = site["client"], site["runs"]
    for action in ACTIONS:
        for field in ("reason", "name", "payload"):
            for value in TRICKY:
                form = {"name": "approved", "payload": "null", field: _clean(value)}
                _answered(client.post(f"/pipelines/runs/{waiting}/{action}/", form))
    _answered(client.post(f"/pipelines/runs/{done}/cancel/", {"reason": "x"}))


@FUZZ
@given(
    action=st.sampled_from(ACTIONS),
    run=st.sampled_from([0, 1, None]),
    form=st.fixed_dictionaries(
        {},
        optional={"reason": text, "name": st.one_of(st.just("approved"), text), "payload": text},
    ),
)
def test_dashboard_action_forms(site, action, run, form):
    run_id = site["runs"][run] if run is not None else 999_999_999
    response = site["client"].post(
        f"/pipelines/runs/{run_id}/{action}/", {k: _clean(v) for k, v in form.items()}
    )
    _answered(response)


FLAGS = ["--json", "--input", "--idempotency-key", "--status", "--pipeline", "--limit"]
flags = st.sampled_from([*FLAGS, "--reason", "--payload"])
arguments = st.lists(
    st.one_of(text, flags, st.sampled_from(["ChainPipeline", "1", "2", "approved"])), max_size=5
)


def _command(*args: str) -> None:
    """Run the command as the shell would; only its own error (exit status 1) may come
    out, and nothing it prints may drive a terminal."""
    out, err = io.StringIO(), io.StringIO()
    args = tuple(a.replace("\x00", "") for a in args)  # an OS passes no NUL in argv
    try:
        call_command("pipelines", *args, stdout=out, stderr=err)
    except CommandError as exc:
        err.write(str(exc))  # what the shell would show on stderr
    printed = out.getvalue() + err.getvalue()
    assert "Traceback" not in printed
    assert not TERMINAL_CONTROLS.search(printed.replace("\n", "")), printed


def test_every_tricky_value_in_every_argument_of_every_subcommand(site):
    _, waiting = site["runs"]
    for value in TRICKY:
        for sub in SUBCOMMANDS:
            _command(sub, value)
            _command(sub, str(waiting), value)
        _command("trigger", "ChainPipeline", "--input", value)
        _command("trigger", "ChainPipeline", "--idempotency-key", value)
        _command("runs", "--limit", value)
        _command("runs", "--pipeline", value, "--json")
        _command("cancel", str(waiting), "--reason", value)
        _command("send-event", str(waiting), "approved", "--payload", value)


@FUZZ
@given(sub=st.sampled_from(SUBCOMMANDS), args=arguments)
def test_command_line_arguments(site, sub, args):
    _command(sub, *args)
