"""Statuses are defined once: the SQL the PostgreSQL store sends takes its status
literals from pipelines.lifecycle, and every status change it writes is allowed there."""

from __future__ import annotations

import re

import pytest

from pipelines.engine.store import sql
from pipelines.lifecycle import RUN_TRANSITIONS, STEP_TRANSITIONS, RunStatus, StepStatus
from pipelines.models import PipelineRun, StepExecution

TABLES = {
    "pipelines_pipelinerun": ("run", RUN_TRANSITIONS),
    "pipelines_stepexecution": ("step", STEP_TRANSITIONS),
}


def _tokens(text: str, group: str) -> set[str]:
    return set(re.findall(r"\{" + group + r"\.(\w+)\}", text))


def test_every_statement_loads_with_real_statuses():
    for name in sql.raw_statements():
        assert "{" not in sql.statement(name), name


def test_an_unknown_status_in_the_sql_is_refused(monkeypatch):
    monkeypatch.setattr(sql, "raw_statements", lambda: {"bad": "SET status = {step.done}"})
    sql.statement.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"step\.done is not a step status"):
            sql.statement("bad")
    finally:
        sql.statement.cache_clear()


def test_every_status_change_in_the_sql_is_an_allowed_transition():
    checked = 0
    for name, text in sql.raw_statements().items():
        for match in re.finditer(r"UPDATE (\w+)\s+SET (.*?)(?=\n\)|\Z|RETURNING)", text, re.S):
            table, body = match.group(1), match.group(2)
            if table not in TABLES or "status =" not in body.split("WHERE")[0]:
                continue
            group, transitions = TABLES[table]
            set_part, _, where_part = body.partition("WHERE")
            targets = _tokens(set_part, group)
            sources = _tokens(where_part, group)
            assert targets, f"{name}: {table} status change without a target"
            assert sources, f"{name}: {table} status change without a guard"
            for source in sources:
                for target in targets:
                    assert target in transitions[source], f"{name}: {group} {source} -> {target}"
                    checked += 1
    assert checked >= 5  # claim (2), succeed_single (2), succeed_arrival (1)


def test_models_take_their_choices_from_the_lifecycle():
    assert PipelineRun._meta.get_field("status").choices == RunStatus.choices
    assert StepExecution._meta.get_field("status").choices == StepStatus.choices
