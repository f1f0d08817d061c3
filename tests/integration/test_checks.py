"""``manage.py check`` validates registered pipelines against the settings."""

from __future__ import annotations

import pytest
from django.core.checks import WARNING
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from pipelines import Pipeline, Step, registry, start


class NowhereStep(Step):
    queue = "no-such-queue"

    def execute(self, payload):
        return payload


@pytest.fixture
def nowhere_pipeline():
    class NowherePipeline(Pipeline):
        name = "nowhere-check"
        definition = start(NowhereStep)

    yield NowherePipeline
    registry.unregister("nowhere-check")


def test_check_passes_for_the_registered_pipelines():
    call_command("check")


def test_check_reports_a_step_queue_missing_from_rq_queues(nowhere_pipeline):
    with pytest.raises(SystemCheckError) as error:
        call_command("check")
    message = str(error.value)
    assert "pipelines.E002" in message
    assert "step NowhereStep uses queue 'no-such-queue', which is not in RQ_QUEUES" in message


def test_check_asks_for_immediate_transactions_on_sqlite_with_the_exact_snippet():
    from pipelines.checks import check_sqlite

    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": "x.sqlite3", "OPTIONS": {}}
    errors = check_sqlite(sqlite)
    # A warning, so that `migrate` on a fresh project still runs.
    assert [(e.id, e.level) for e in errors] == [("pipelines.W003", WARNING)]
    assert "IMMEDIATE transactions" in errors[0].msg
    # The hint is Python that fixes the settings it is run against.
    snippet = errors[0].hint.split("after DATABASES: ", 1)[1]
    namespace = {"DATABASES": {"default": dict(sqlite)}}
    exec(snippet, namespace)  # noqa: S102 - our own hint
    assert check_sqlite(namespace["DATABASES"]["default"]) == []

    assert check_sqlite({**sqlite, "OPTIONS": {"transaction_mode": "IMMEDIATE"}}) == []
    assert check_sqlite({"ENGINE": "django.db.backends.postgresql"}) == []


def test_check_refuses_a_depth_mariadb_cannot_store():
    from dataclasses import replace

    from pipelines.checks import check_value_depth
    from pipelines.conf import get_settings

    mariadb = {"ENGINE": "django.db.backends.mysql", "NAME": "x"}
    deep = replace(get_settings(), max_value_depth=30)
    errors = check_value_depth(mariadb, deep)
    assert [e.id for e in errors] == ["pipelines.E004"]
    assert errors[0].msg == (
        "PIPELINES_MAX_VALUE_DEPTH is 30; MariaDB stores values nested at most 29 levels deep"
    )

    assert check_value_depth(mariadb, get_settings()) == []
    assert check_value_depth({"ENGINE": "django.db.backends.postgresql"}, deep) == []
