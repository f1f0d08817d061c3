"""``manage.py pipelines``: tables, --json, and every error path (stderr, exit 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pipelines.management.generator import STARTAPP_TESTS
from pipelines.models import PipelineRun
from tests.helpers.inprocess import drive
from tests.helpers.procs import ROOT, worker_env
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


def run_command(*args: str) -> str:
    out = StringIO()
    call_command("pipelines", *args, stdout=out)
    return out.getvalue()


def test_list_and_graph(redis_conn):
    table = run_command("list")
    assert table.splitlines()[0].split() == ["PIPELINE", "STEPS", "MODULE", "ON", "HALT"]
    assert "DividePipeline" in table
    listed = json.loads(run_command("list", "--json"))
    chain = next(row for row in listed if row["name"] == "ChainPipeline")
    assert chain == {
        "name": "ChainPipeline",
        "module": "tests.testapp.pipelines",
        "steps": 3,
        "first": "Add.0",
        "on_halt": None,
    }
    graph = run_command("graph", "DividePipeline")
    assert "Add.0" in graph
    assert "=> divide [SlowLabel.1, FastLabel.2, Prefix.3] -> combine Gather.5" in graph


def test_trigger_runs_show_and_json(redis_conn):
    out = run_command("trigger", "ChainPipeline", "--input", '{"n": 4}', "--idempotency-key", "k9")
    run = PipelineRun.objects.get(idempotency_key="k9")
    assert out == f"run {run.pk} (ChainPipeline) is pending\n/pipelines/runs/{run.pk}/\n"
    assert run.input == {"n": 4}
    drive(run)
    run.context.set("api_key", "hidden-value")

    runs = run_command("runs", "--status", "succeeded", "--pipeline", "ChainPipeline")
    rows = [line.split()[:4] for line in runs.splitlines()]
    assert [str(run.pk), "ChainPipeline", "succeeded", "3/3"] in rows
    assert run_command("runs", "--status", "failed") == "no runs\n"
    listed = json.loads(run_command("runs", "--json"))[0]
    assert (listed["id"], listed["steps_done"], listed["steps_total"]) == (run.pk, 3, 3)

    shown = run_command("show", str(run.pk))
    assert f"run {run.pk} (ChainPipeline) has succeeded" in shown
    assert f"url:      /pipelines/runs/{run.pk}/" in shown
    assert 'input:    {"n": 4}' in shown
    assert f"output:   {json.dumps(run.refresh().output)}" in shown
    assert "steps:    3 of 3 done" in shown
    assert f"started: {run.started_at:%Y-%m-%d %H:%M:%S}" in shown
    assert "Double.2" in shown
    assert "double-6 = 12  [step Double.2" in shown
    assert "hidden-value" not in shown
    assert 'api_key = "••••••"' in shown
    data = json.loads(run_command("show", str(run.pk), "--json"))
    assert data["context"]["double-6"]["value"] == 12
    assert [s["node"] for s in data["steps"]] == ["Add.0", "AddAgain.1", "Double.2"]
    assert (data["input"], data["output"]) == ({"n": 4}, run.output)
    assert (data["steps_done"], data["steps_total"]) == (3, 3)
    assert data["duration_seconds"] >= 0
    assert all(s["duration_seconds"] is not None for s in data["steps"])


def test_trigger_json_reports_progress_and_the_absolute_url(redis_conn, settings):
    data = json.loads(
        run_command(
            "trigger",
            "ChainPipeline",
            "--input",
            '{"n": 1}',
            "--json",
            "--base-url",
            "https://ops.example.com/",
        )
    )
    assert data["url"] == f"https://ops.example.com/pipelines/runs/{data['id']}/"
    assert (data["status"], data["steps_done"], data["steps_total"]) == ("pending", 0, 1)

    settings.PIPELINES_DASHBOARD_URL = "http://127.0.0.1:8000"
    out = run_command("trigger", "ChainPipeline", "--input", '{"n": 2}')
    assert out.splitlines()[1].startswith("http://127.0.0.1:8000/pipelines/runs/")


def test_runs_keeps_the_message_of_a_long_error(redis_conn):
    failed = drive(p.FailingPipeline.trigger({"n": 1}))
    assert failed.error.startswith("step Explode.1 failed after 2 attempts: ")

    row = next(line for line in run_command("runs").splitlines() if line.startswith(str(failed.pk)))
    assert row.endswith("step Explode.1 failed after 2 attempts: RuntimeError: boom on attempt 2")


def test_runs_of_an_unknown_pipeline_is_an_error(redis_conn):
    with pytest.raises(CommandError, match="unknown pipeline 'Nope' \\(known: "):
        call_command("pipelines", "runs", "--pipeline", "Nope")
    # A pipeline removed from the code still lists its runs.
    PipelineRun.objects.create(pipeline="Retired", input=None)
    assert run_command("runs", "--pipeline", "Retired").splitlines()[1].split()[1] == "Retired"


def test_every_subcommand_has_a_description_examples_and_json(capsys):
    for sub in [
        "list",
        "graph",
        "trigger",
        "runs",
        "show",
        "cancel",
        "retry",
        "resume",
        "rerun",
        "send-event",
        "recover",
        "new",
        "worker",
        "doctor",
    ]:
        with pytest.raises(SystemExit):
            call_command("pipelines", sub, "--help")
        text = capsys.readouterr().out
        assert "examples:\n  python manage.py pipelines " in text, sub
        description = text.split("\n\n")[1]
        assert not description.startswith(("positional", "options")), sub
        if sub != "worker":
            assert "--json" in text, sub
        for positional in ("NAME", "RUN"):
            if f" {positional}\n" in text.split("\n\n")[0] + "\n":
                assert f"  {positional}  " in text, (sub, positional)
    with pytest.raises(SystemExit):
        call_command("pipelines", "--help")
    assert "retry (resume)" in capsys.readouterr().out


def test_recover_graph_and_new_speak_json(redis_conn):
    report = json.loads(run_command("recover", "--json"))
    assert set(report) == {"reclaimed", "crashed_out", "reenqueued", "timed_out_waits", "stopped"}
    graph = json.loads(run_command("graph", "DividePipeline", "--json"))
    first = graph["nodes"][0]
    assert (graph["entry"], first["id"], first["transition"]["kind"]) == (
        "Add.0",
        "Add.0",
        "divide",
    )
    assert "=> divide [SlowLabel.1, FastLabel.2, Prefix.3] -> combine Gather.5" in "\n".join(
        graph["text"]
    )


def test_cancel_and_retry(redis_conn):
    pending = p.ChainPipeline.trigger({"n": 1})
    assert run_command("cancel", str(pending.pk)).splitlines()[0].endswith(" was cancelled")
    failed = drive(p.FailingPipeline.trigger({"n": 1}))
    assert run_command("retry", str(failed.pk)).splitlines()[0].endswith(" is running")
    again = drive(failed)
    assert json.loads(run_command("resume", str(again.pk), "--json"))["status"] == "running"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trigger", "Nope"], "unknown pipeline 'Nope' (known: "),
        (
            ["trigger", "ChainPipeline", "--input", '{"n": 1,\n "m": }'],
            "--input is not valid JSON: Expecting value at line 2 column 7",
        ),
        (["trigger", "ChainPipeline", "--input", '{"n": NaN}'], 'input["n"]: NaN is not allowed'),
        (["graph", "Nope"], "unknown pipeline 'Nope'"),
        (
            ["show", "424242"],
            "no run with id 424242; list runs with: python manage.py pipelines runs",
        ),
        (["show", "abc"], "RUN must be an id made of the digits 0-9, got 'abc'"),
        (["cancel", "424242"], "no run with id 424242"),
        (["retry", "424242"], "no run with id 424242"),
        (["resume", "424242"], "no run with id 424242"),
        (["new", "lowercase", "--app", "testapp"], "NAME must be a CamelCase class name"),
        (["new", "Thing", "--app", "nope"], "no installed app 'nope'; installed: "),
    ],
)
def test_errors_say_how_to_fix_them(args, message, redis_conn):
    with pytest.raises(CommandError) as error:
        call_command("pipelines", *args)
    assert message in str(error.value)


def test_errors_go_to_stderr_with_a_non_zero_exit():
    done = subprocess.run(
        [sys.executable, "manage.py", "pipelines", "show", "999999999"],
        cwd=ROOT,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert "no run with id 999999999" in done.stderr


def test_retry_of_a_run_that_did_not_fail_is_refused(redis_conn):
    run = drive(p.ChainPipeline.trigger({"n": 1}))
    with pytest.raises(CommandError) as error:
        call_command("pipelines", "retry", str(run.pk))
    assert str(error.value) == f"run {run.pk} has succeeded; only failed runs resume"


def _generated_app(tmp_path, monkeypatch, name="genapp"):
    app_dir = tmp_path / name
    app_dir.mkdir()
    (app_dir / "__init__.py").touch()
    fake = SimpleNamespace(path=str(app_dir), name=name, label=name)
    monkeypatch.setattr("pipelines.management.generator.apps.get_app_config", lambda label: fake)
    return app_dir


def _lint_and_type_check(project_dir):
    """ruff (this project's rules) and strict mypy on the generated code."""
    tools = Path(sys.executable).parent
    for args in (
        [str(tools / "ruff"), "check", "--config", str(ROOT / "pyproject.toml"), "."],
        [str(tools / "ruff"), "format", "--check", "--config", str(ROOT / "pyproject.toml"), "."],
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "."],
    ):
        done = subprocess.run(
            args,
            cwd=project_dir,
            env={**os.environ, "MYPYPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{args[1:3]}:\n{done.stdout}{done.stderr}"


def test_new_writes_a_pipeline_and_its_test_into_tests_py(tmp_path, monkeypatch):
    app_dir = _generated_app(tmp_path, monkeypatch)
    (app_dir / "tests.py").write_text(STARTAPP_TESTS)  # what startapp writes

    out = run_command("new", "ImportInvoices", "--app", "genapp")

    assert "Restart your pipelines workers" in out
    assert not (app_dir / "tests").exists()  # a tests/ package would shadow tests.py
    tests = (app_dir / "tests.py").read_text()
    assert "class ImportInvoicesPipelineTests(PipelinesTestMixin, TestCase):" in tests
    try:
        with pytest.raises(CommandError, match="already defines class ImportInvoices"):
            run_command("new", "ImportInvoices", "--app", "genapp")
        run_command("new", "SecondOne", "--app", "genapp")  # appends to both files
        assert (app_dir / "pipelines.py").read_text().count("(Pipeline):") == 2
        assert (app_dir / "tests.py").read_text().count("(PipelinesTestMixin, TestCase)") == 2
        _lint_and_type_check(tmp_path)
    finally:
        for name in [m for m in sys.modules if m.startswith("genapp")]:
            del sys.modules[name]


def test_new_puts_its_test_into_an_existing_tests_package(tmp_path, monkeypatch):
    app_dir = _generated_app(tmp_path, monkeypatch)
    (app_dir / "tests").mkdir()

    run_command("new", "ImportInvoices", "--app", "genapp")

    assert not (app_dir / "tests.py").exists()
    assert (app_dir / "tests" / "__init__.py").exists()
    test_file = app_dir / "tests" / "test_import_invoices_pipeline.py"
    assert "self.run_pipeline(ImportInvoices" in test_file.read_text()
    _lint_and_type_check(tmp_path)


def test_without_the_dashboard_in_the_urlconf_runs_have_no_url(redis_conn, settings):
    settings.ROOT_URLCONF = "tests.testapp.no_dashboard_urls"
    data = json.loads(run_command("trigger", "ChainPipeline", "--input", '{"n": 1}', "--json"))
    assert data["url"] is None
    shown = run_command("show", str(data["id"]))
    assert "url:      - (include pipelines.urls in your URLconf for the dashboard)" in shown
