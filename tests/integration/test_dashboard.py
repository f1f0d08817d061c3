"""The dashboard: the whole auth matrix, CSRF, escaping, masking, query counts."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from pipelines.models import PipelineRun, StepExecution
from tests.helpers.inprocess import big_run, drive
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]
XSS = '</script><img src=x onerror="alert(1)">'


def make_user(name: str, *, staff: bool, perms: tuple[str, ...] = ()) -> User:
    user = User.objects.create_user(name, password="pw", is_staff=staff)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


@pytest.fixture
def users(db):
    return {
        "non_staff": make_user("visitor", staff=False),
        "staff": make_user("staff", staff=True),
        "viewer": make_user("viewer", staff=True, perms=("view_pipelinerun",)),
        "operator": make_user(
            "operator",
            staff=True,
            perms=("view_pipelinerun", "cancel_run", "retry_run", "rerun_run", "send_event"),
        ),
        # The action's permission without the view permission: the run stays hidden.
        "blind_operator": make_user(
            "blind", staff=True, perms=("cancel_run", "retry_run", "rerun_run", "send_event")
        ),
    }


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def finished_run(redis_conn):
    return drive(p.ChainPipeline.trigger({"n": 1}))


PAGES = [
    "pipelines:overview",
    "pipelines:runs",
    "pipelines:run",
    "pipelines:run-live",
    "pipelines:run-context",
]


def page_url(name: str, run: PipelineRun) -> str:
    if name.endswith(("run", "run-live", "run-context")):
        return reverse(name, args=[run.pk])
    return reverse(name)


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (None, 302),
        ("non_staff", 403),
        ("staff", 403),  # staff without pipelines.view_pipelinerun, as in the admin
        ("blind_operator", 403),
        ("viewer", 200),
        ("operator", 200),
    ],
)
def test_pages_need_a_staff_login_and_the_view_permission(users, finished_run, name, who, expected):
    response = client_for(users.get(who)).get(page_url(name, finished_run))

    assert response.status_code == expected
    if expected == 302:
        assert response["Location"].startswith("/admin/login/?next=")


ACTIONS = ["pipelines:cancel", "pipelines:retry", "pipelines:rerun", "pipelines:send-event"]


@pytest.mark.parametrize("name", ACTIONS)
@pytest.mark.parametrize(
    ("who", "method", "expected"),
    [
        (None, "post", 302),
        ("non_staff", "post", 403),
        ("staff", "post", 403),  # staff without the action's permission
        ("viewer", "post", 403),
        ("blind_operator", "post", 403),  # the action's permission but not the view one
        ("operator", "get", 405),
        ("operator", "post", 302),  # done (or refused with a message), back to the run page
    ],
)
def test_actions_need_staff_permission_and_post(users, finished_run, name, who, method, expected):
    client = client_for(users.get(who))
    url = reverse(name, args=[finished_run.pk])
    response = getattr(client, method)(url, {"name": "approved", "payload": "{}"})

    assert response.status_code == expected
    if who == "operator" and method == "post":
        assert response["Location"].startswith("/pipelines/runs/")


def test_cancel_needs_a_csrf_token_and_then_cancels(users, redis_conn):
    run = p.ChainPipeline.trigger({"n": 1})
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["operator"])
    url = reverse("pipelines:cancel", args=[run.pk])

    assert client.post(url).status_code == 403
    run.refresh_from_db()
    assert run.status == "pending"

    page = client.get(reverse("pipelines:run", args=[run.pk]))
    token = page.context["csrf_token"]
    response = client.post(url, {"csrfmiddlewaretoken": str(token), "reason": "ops said so"})

    assert response.status_code == 302
    run.refresh_from_db()
    assert (run.status, run.error) == ("cancelled", "ops said so")


def test_rerun_retry_and_event_actions_call_the_services(users, redis_conn):
    from tests.testapp import fault_pipelines as f

    client = client_for(users["operator"])
    failed = drive(p.FailingPipeline.trigger({"n": 1}))
    response = client.post(reverse("pipelines:rerun", args=[failed.pk]))
    new_run = PipelineRun.objects.latest("id")
    assert new_run.pk != failed.pk
    assert response["Location"] == reverse("pipelines:run", args=[new_run.pk])

    client.post(reverse("pipelines:retry", args=[failed.pk]))
    failed.refresh_from_db()
    assert failed.status == "running"

    waiting = drive(f.ApprovalPipeline.trigger({}))
    assert waiting.status == "waiting"
    page = client.get(reverse("pipelines:run", args=[waiting.pk]))
    assert b'name="payload"' in page.content  # the event form is offered
    bad = client.post(
        reverse("pipelines:send-event", args=[waiting.pk]),
        {"name": "approved", "payload": "{oops"},
    )
    assert bad.status_code == 400
    assert b"The payload is not valid JSON: Expecting property name" in bad.content
    client.post(
        reverse("pipelines:send-event", args=[waiting.pk]),
        {"name": "approved", "payload": '{"by": "web"}'},
    )
    assert drive(waiting).output == {"applied_by": "web"}


def test_user_data_is_escaped_everywhere(users, redis_conn):
    run = drive(p.ChainPipeline.trigger({"n": 1, "note": XSS}))
    run.context.set(XSS, XSS)
    staff = client_for(users["viewer"])
    admin = client_for(User.objects.create_superuser("root", "", "pw"))

    pages = [
        staff.get(reverse("pipelines:run", args=[run.pk])),
        staff.get(reverse("pipelines:run", args=[run.pk]) + f"?after={run.steps.first().pk}"),
        staff.get(reverse("pipelines:runs")),
        admin.get(reverse("admin:pipelines_pipelinerun_change", args=[run.pk])),
        admin.get(reverse("admin:pipelines_contextwrite_changelist")),
    ]
    for response in pages:
        html = response.content.decode()
        assert response.status_code == 200
        assert "<img src=x" not in html, response.request["PATH_INFO"]
        assert "</script><img" not in html
    assert "&lt;/script&gt;&lt;img src=x onerror=" in pages[0].content.decode()


def test_secret_looking_keys_are_masked(users, redis_conn, settings):
    run = drive(p.ChainPipeline.trigger({"n": 1, "password": "hunter2"}))
    run.context.set("api_token", "sk-live-123")
    # A dash: never part of a CSRF token (letters and digits), which "s3" once matched.
    run.context.set("profile", {"name": "Ada", "secret": "s3-cret"})
    client = client_for(users["viewer"])

    html = client.get(reverse("pipelines:run", args=[run.pk])).content.decode()

    for secret in ("hunter2", "sk-live-123", "s3-cret"):
        assert secret not in html
    assert "••••••" in html
    assert "Ada" in html
    settings.PIPELINES_MASKED_KEYS = ["profile"]  # configurable: added to the defaults
    html = client.get(reverse("pipelines:run", args=[run.pk])).content.decode()
    assert "sk-live-123" not in html
    assert "Ada" not in html


def test_context_after_a_step_shows_the_context_as_it_stood(users, redis_conn):
    run = drive(p.ChainPipeline.trigger({"n": 1}))
    run.context.set("later", "added after the run")
    double = StepExecution.objects.get(run=run, step="Double")
    client = client_for(users["viewer"])

    html = client.get(reverse("pipelines:run", args=[run.pk]) + f"?after={double.pk}").content
    assert f"Step #{double.pk} ".encode() in html
    assert b"double-3" in html
    assert b"added after the run" not in html


def test_context_diff_and_writers_per_step(users, redis_conn):
    run = drive(p.ChainPipeline.trigger({"n": 1}))
    run.context.set("double-3", 7, overwrite=True)
    double = StepExecution.objects.get(run=run, step="Double")
    client = client_for(users["viewer"])

    diff = client.get(reverse("pipelines:run", args=[run.pk]), {"after": double.pk})
    rows = diff.context["snapshot_diff"]
    assert [(w["key"], w["value"], w["overwrite"]) for w in rows] == [("double-3", "6", False)]
    assert b'<tr class="added"><td>added</td><td><code>double-3</code>' in diff.content

    page = client.get(reverse("pipelines:run", args=[run.pk]))
    html = page.content.decode()
    # The current value, its writer (outside a step, an overwrite) and the whole history.
    (entry,) = page.context["entries"]
    assert entry["value"] == "7"
    assert entry["last"].execution_id is None
    assert entry["last"].overwrite
    assert [h["write"].execution_id for h in entry["history"]] == [double.pk, None]
    assert "history (2 writes, 1 overwritten)" in html
    assert f'<a href="#step-{double.pk}">Double' in html
    # The step's own row lists what it wrote.
    assert '<li class="added">+ <code>double-3</code> = <code>6</code></li>' in html
    # The context comes before the graph, the timeline and the step history.
    assert html.index('id="context"') < html.index('id="graph"') < html.index('id="steps"')


def test_panels_of_a_run_that_finishes_change_in_the_live_fragment(users, redis_conn):
    client = client_for(users["operator"])
    active = p.FailingPipeline.trigger({"n": 1})
    live = client.get(reverse("pipelines:run-live", args=[active.pk])).content.decode()
    assert "Cancel run" in live
    assert "Retry failed step" not in live
    assert "Not yet: the run has not finished." in live
    failed = drive(active)
    assert failed.status == "failed"
    live = client.get(reverse("pipelines:run-live", args=[failed.pk])).content.decode()
    assert "Cancel run" not in live
    assert "Retry failed step" in live
    assert "None: the run failed." in live

    done = drive(p.ChainPipeline.trigger({"n": 1}))
    live = client.get(reverse("pipelines:run-live", args=[done.pk])).content.decode()
    assert "Cancel run" not in live
    assert "Retry failed step" not in live
    assert '<section class="panel" id="run-output"><h2>Output</h2><pre>{' in live


def test_unknown_run_is_a_styled_404(users):
    response = client_for(users["viewer"]).get(reverse("pipelines:run", args=[999_999]))
    assert response.status_code == 404
    html = response.content.decode()
    assert "dashboard.css" in html
    assert "No run with id 999999" in html


def test_live_fragment_polls_only_while_the_run_is_active(users, redis_conn):
    client = client_for(users["viewer"])
    active = p.ChainPipeline.trigger({"n": 1})
    live = client.get(reverse("pipelines:run-live", args=[active.pk])).content
    assert b'hx-trigger="every 2s"' in live
    done = drive(active)
    live = client.get(reverse("pipelines:run-live", args=[done.pk])).content
    assert b"hx-trigger" not in live
    assert b'data-status="succeeded"' in live


def test_run_page_query_count_does_not_grow_with_the_run(users, redis_conn):
    client = client_for(users["viewer"])
    small = big_run(steps=3, keys=2)
    big = big_run(steps=10_000, keys=1_000)
    counts = {}
    for label, run in (("small", small), ("big", big)):
        for url in (
            reverse("pipelines:run", args=[run.pk]),
            reverse("pipelines:run-live", args=[run.pk]),
        ):
            with CaptureQueriesContext(connection) as queries:
                assert client.get(url).status_code == 200
            counts[(label, url.split("/")[-2])] = len(queries)

    assert counts[("small", str(small.pk))] == counts[("big", str(big.pk))]
    assert counts[("small", "live")] == counts[("big", "live")]
    assert counts[("big", str(big.pk))] <= 20
    page = client.get(reverse("pipelines:run", args=[big.pk])).content.decode()
    assert "steps page 1 of 200 (10000 executions)" in page
    assert "keys page 1 of 10" in page


def test_runs_list_filters_and_searches(users, redis_conn):
    client = client_for(users["viewer"])
    keyed = drive(p.ChainPipeline.trigger({"n": 1}, idempotency_key="order-77"))
    other = drive(p.DivertEndPipeline.trigger({"choice": "a"}))
    keyed.context.set("customer_id", 7)

    def listed(query: str) -> set[int]:
        response = client.get(reverse("pipelines:runs") + "?" + query)
        return {run.pk for run in response.context["page"].object_list}

    assert listed("") == {keyed.pk, other.pk}
    assert listed("pipeline=DivertEndPipeline") == {other.pk}
    assert listed("status=succeeded") == {keyed.pk, other.pk}
    assert listed("status=failed") == set()
    assert listed("q=order-77") == {keyed.pk}
    assert listed(f"q={other.pk}") == {other.pk}
    assert listed("q=customer_id%3D7") == {keyed.pk}
    assert listed("since=1h") == {keyed.pk, other.pk}
    html = client.get(reverse("pipelines:runs")).content.decode()
    assert "3/3" in html  # progress: steps of the graph done / all


def test_runs_list_progress_is_against_the_graph_and_its_queries_are_constant(users, redis_conn):
    client = client_for(users["viewer"])
    url = reverse("pipelines:runs")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    drive(p.FailingPipeline.trigger({"n": 1}))
    few = queries()
    for n in range(6):
        drive(p.ChainPipeline.trigger({"n": n}))
        drive(p.FailingPipeline.trigger({"n": n}))
    assert queries() <= few + 1  # at most one more: ChainPipeline's definition, once
    assert queries() == queries()
    rows = client.get(url).context["rows"]
    failed = [progress for run, progress in rows if run.status == "failed"]
    # Add succeeded, Explode failed, AddAgain never ran: every failed run reads the same.
    assert {tuple(progress.segments) for progress in failed} == {
        (("succeeded", 1, 33.33), ("failed", 1, 33.33), ("skipped", 1, 33.33))
    }


def test_overview_shows_counts_failures_and_pipeline_rates(users, redis_conn):
    drive(p.ChainPipeline.trigger({"n": 1}))
    failed = drive(p.FailingPipeline.trigger({"n": 1}))
    html = client_for(users["viewer"]).get(reverse("pipelines:overview")).content.decode()

    assert f"#{failed.pk} FailingPipeline" in html
    assert "boom on attempt 2" in html
    assert "100.0%" in html  # ChainPipeline
    assert "0.0%" in html  # FailingPipeline
    assert "2</strong> runs finished" in html


def test_graph_draws_the_halt_handler_and_compensations(users, redis_conn):
    run = drive(p.SagaPipeline.trigger(None))
    page = client_for(users["viewer"]).get(reverse("pipelines:run", args=[run.pk]))
    svg = page.context["graph_svg"]
    # The halt handler ran once, drawn in its own row; Reserve was undone, Charge's undo
    # failed; Explodes has no compensation.
    assert '<g class="node halt status-succeeded" data-node="RecordHalt.' in svg
    reserve = svg[svg.index('data-node="Reserve.0"') :].split("</g>")[0]
    charge = svg[svg.index('data-node="Charge.1"') :].split("</g>")[0]
    explodes = svg[svg.index('data-node="Explodes.2"') :].split("</g>")[0]
    assert '<text class="undo status-succeeded"' in reserve
    assert "\u21ba undone" in reserve
    assert '<text class="undo status-failed"' in charge
    assert "undo" not in explodes
    # Progress: the failed step in its colour, the compensated ones still done.
    assert page.context["progress"].parts == {"succeeded": 2, "failed": 1}


def test_a_step_diff_shows_what_an_overwrite_replaced_and_who_wrote_it(users, redis_conn):
    run = drive(p.OverwritePipeline.trigger(None))
    first = StepExecution.objects.get(run=run, step="WriteFirst")
    rewrite = StepExecution.objects.get(run=run, step="Rewrite")
    page = client_for(users["viewer"]).get(
        reverse("pipelines:run", args=[run.pk]), {"after": rewrite.pk}
    )
    assert page.context["snapshot_diff"] == [
        {
            "key": "state",
            "value": '{"final": true}',
            "overwrite": True,
            "previous": '"new"',
            "previous_writer": f"WriteFirst.0 #{first.pk}",
        },
        {
            "key": "note",
            "value": '"rewritten"',
            "overwrite": False,
            "previous": "",
            "previous_writer": "",
        },
    ]
    assert f"written by WriteFirst.0 #{first.pk}" in page.content.decode()
