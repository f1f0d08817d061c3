"""A deploy that changes a pipeline while runs are in flight: each run keeps the
definition it was triggered with. The test process runs release v1 of
tests.testapp.deploy_pipelines; the workers run v2, which reorders the steps and removes
a step class."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.urls import reverse

from pipelines.models import PipelineDefinition, PipelineRun, RunStatus
from tests.helpers.procs import ROOT, worker_env
from tests.integration.test_dashboard import client_for, users  # noqa: F401 - fixture
from tests.testapp import deploy_pipelines as d

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.portable]
WORKER_ENV = {"PIPELINES_TEST_DEPLOY": "v2"}


def test_a_run_keeps_its_definition_across_a_deploy(workers, finished, users):  # noqa: F811
    assert d.RELEASE == "v1"
    old = d.DeployPipeline.trigger([])
    gone = d.RetiringPipeline.trigger([])

    old = finished(old)
    gone = finished(gone)

    # Run by v2 workers, along the v1 graph it was triggered with.
    assert old.status == RunStatus.SUCCEEDED, old.error
    assert d.trace(old) == ["Open@v2", "Check@v2", "Close@v2"]
    # A step class of its definition is gone: the run fails, saying so.
    assert gone.status == RunStatus.FAILED
    assert "step class tests.testapp.deploy_pipelines:Retired no longer exists" in gone.error

    # A run triggered by the new release follows the new graph.
    out = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "pipelines",
            "trigger",
            "DeployPipeline",
            "--input",
            "[]",
            "--json",
        ],
        cwd=ROOT,
        env=worker_env(**WORKER_ENV),
        capture_output=True,
        text=True,
        check=True,
    )
    new = finished(PipelineRun.objects.get(pk=json.loads(out.stdout)["id"]))
    assert d.trace(new) == ["Open@v2", "Audit@v2", "Close@v2", "Check@v2"]

    # Stored once per distinct definition, referenced by hash.
    assert old.definition_id != new.definition_id
    assert PipelineDefinition.objects.filter(pipeline="DeployPipeline").count() == 2
    again = d.DeployPipeline.trigger([])
    assert again.definition_id == old.definition_id
    assert PipelineDefinition.objects.filter(pipeline="DeployPipeline").count() == 2

    # The run page says which definition a run follows, and whether it is current here.
    client = client_for(users["viewer"])
    page = client.get(reverse("pipelines:run", args=[old.pk])).content.decode()
    assert "definition <code" in page
    assert old.definition_id[:12] in page
    assert "differs from the current definition" not in page
    page = client.get(reverse("pipelines:run", args=[new.pk])).content.decode()
    assert new.definition_id[:12] in page
    assert "differs from the current definition of DeployPipeline" in page
