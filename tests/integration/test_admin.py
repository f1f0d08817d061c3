"""The admin: read-only engine rows, constant query counts, service-backed actions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from pipelines.models import PipelineRun, StepExecution
from tests.helpers.inprocess import drive
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "", "pw"))
    return client


def test_changelists_have_constant_query_counts(admin_client, redis_conn):
    def count(url: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url).status_code == 200
        return len(queries)

    urls = [
        reverse("admin:pipelines_pipelinerun_changelist"),
        reverse("admin:pipelines_stepexecution_changelist"),
        reverse("admin:pipelines_contextwrite_changelist"),
    ]
    drive(p.ChainPipeline.trigger({"n": 1}))
    before = [count(url) for url in urls]
    for i in range(6):
        drive(p.ChainPipeline.trigger({"n": i}))
    after = [count(url) for url in urls]

    assert before == after


def test_a_runs_change_page_has_a_constant_query_count(admin_client, redis_conn):
    """The inlines show the first 50 rows in one query each, not a query per row."""
    from pipelines.models import ContextWrite, StepExecution

    run = drive(p.ChainPipeline.trigger({"n": 1}))
    url = reverse("admin:pipelines_pipelinerun_change", args=[run.pk])

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url).status_code == 200
        return len(queries)

    count()  # warm the caches (content types, permissions) the first request fills
    small = count()
    StepExecution.objects.bulk_create(
        StepExecution(run=run, node="Add.0", step="Add", status="succeeded", queue="pipelines")
        for _ in range(60)
    )
    ContextWrite.objects.bulk_create(
        ContextWrite(run=run, key=f"k{i}", value=i, overwrite=True) for i in range(60)
    )
    assert count() == small


def test_engine_rows_are_read_only(admin_client, redis_conn):
    run = drive(p.ChainPipeline.trigger({"n": 1}))
    change = reverse("admin:pipelines_pipelinerun_change", args=[run.pk])

    page = admin_client.get(change)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert b"run page" in page.content  # link to the dashboard
    assert b"succeeded" in page.content
    assert admin_client.get(reverse("admin:pipelines_pipelinerun_add")).status_code == 403
    admin_client.post(change, {"pipeline": "Hacked"})
    run.refresh_from_db()
    assert run.pipeline == "ChainPipeline"
    delete = reverse("admin:pipelines_pipelinerun_delete", args=[run.pk])
    assert admin_client.get(delete).status_code == 403


def test_search_filters_and_date_hierarchy(admin_client, redis_conn):
    keyed = drive(p.ChainPipeline.trigger({"n": 1}, idempotency_key="admin-key-1"))
    drive(p.FailingPipeline.trigger({"n": 1}))
    url = reverse("admin:pipelines_pipelinerun_changelist")

    assert list(admin_client.get(url + "?q=admin-key-1").context["cl"].result_list) == [keyed]
    failed = admin_client.get(url + "?status__exact=failed").context["cl"].result_list
    assert [r.pipeline for r in failed] == ["FailingPipeline"]
    page = admin_client.get(url).content.decode()
    assert 'class="pl-badge pl-succeeded"' in page
    assert "3/3" in page


def test_admin_actions_call_services_and_need_permissions(redis_conn):
    run = p.ChainPipeline.trigger({"n": 1})
    url = reverse("admin:pipelines_pipelinerun_changelist")
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_pipelinerun"))
    client = Client()
    client.force_login(viewer)

    page = client.get(url)
    assert page.status_code == 200
    assert b"cancel_runs" not in page.content  # no permission, no action
    client.post(url, {"action": "cancel_runs", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.status == "pending"

    viewer.user_permissions.add(Permission.objects.get(codename="cancel_run"))
    client.force_login(User.objects.get(pk=viewer.pk))
    assert b"cancel_runs" in client.get(url).content
    client.post(url, {"action": "cancel_runs", "_selected_action": [run.pk]}, follow=True)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert run.error == "cancelled by viewer in the admin"

    response = client.post(
        url, {"action": "cancel_runs", "_selected_action": [run.pk]}, follow=True
    )
    assert b"only pending, running or waiting runs can be cancelled" in response.content
    assert PipelineRun.objects.count() == 1


def test_lists_show_seconds_newest_first_and_no_red_cross_for_a_normal_write(
    admin_client, redis_conn
):
    older = drive(p.ChainPipeline.trigger({"n": 1}))
    newer = drive(p.ChainPipeline.trigger({"n": 2}))
    second = f"{timezone.localtime(newer.created_at):%Y-%m-%d %H:%M:%S}"

    runs = admin_client.get(reverse("admin:pipelines_pipelinerun_changelist"))
    assert second in runs.content.decode()
    page = admin_client.get(reverse("admin:pipelines_pipelinerun_change", args=[newer.pk]))
    assert f"{timezone.localtime(newer.started_at):%Y-%m-%d %H:%M:%S}" in page.content.decode()

    steps = admin_client.get(reverse("admin:pipelines_stepexecution_changelist"))
    step_runs = [s.run_id for s in steps.context["cl"].result_list]
    assert step_runs == sorted(step_runs, reverse=True)
    assert step_runs[0] == newer.pk
    assert f"{timezone.localtime(StepExecution.objects.latest('id').started_at):%H:%M:%S}" in (
        steps.content.decode()
    )

    writes = admin_client.get(reverse("admin:pipelines_contextwrite_changelist"))
    rows = writes.context["cl"].result_list
    assert (rows[0].run_id, rows[len(rows) - 1].run_id) == (newer.pk, older.pk)
    html = writes.content.decode()
    assert "icon-no" not in html  # the boolean column's icons
    assert "icon-yes" not in html
    assert '<td class="field-write_kind">set</td>' in html
