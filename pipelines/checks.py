"""``manage.py check`` validates every registered pipeline against the settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.core.checks import Warning as CheckWarning

from pipelines import registry
from pipelines.conf import PORTABLE_MAX_VALUE_DEPTH, PipelineSettings, get_settings
from pipelines.exceptions import DefinitionError


@register()
def check_pipelines(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    queues = getattr(settings, "RQ_QUEUES", {})
    for pipeline in registry.all_pipelines():
        for step in pipeline.graph.steps():
            try:
                step.validate_class()
            except DefinitionError as exc:
                errors.append(Error(str(exc), obj=pipeline.name, id="pipelines.E001"))
            queue = step.queue_name()
            if queue not in queues:
                errors.append(
                    Error(
                        f"pipeline {pipeline.name}: step {step.__qualname__} uses queue "
                        f"{queue!r}, which is not in RQ_QUEUES",
                        hint=f"Add {queue!r} to RQ_QUEUES or set the step's queue attribute.",
                        obj=pipeline.name,
                        id="pipelines.E002",
                    )
                )
    errors += check_sqlite(settings.DATABASES.get("default", {}))
    errors += check_value_depth(settings.DATABASES.get("default", {}), get_settings())
    return errors


SQLITE_OPTIONS = (
    'DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", '
    '"timeout": 30, "init_command": "PRAGMA journal_mode=WAL;"})'
)


def check_sqlite(db: dict[str, Any]) -> list[CheckMessage]:
    if not db.get("ENGINE", "").endswith("sqlite3"):
        return []
    if db.get("OPTIONS", {}).get("transaction_mode") == "IMMEDIATE":
        return []
    # With SQLite's default deferred transactions, select_for_update does nothing and two
    # completing steps fail on a lock upgrade instead of waiting for each other. A warning,
    # not an error, so that `migrate` still runs; `pipelines worker` refuses to start.
    return [
        CheckWarning(
            "pipelines on SQLite need IMMEDIATE transactions: concurrent steps would fail "
            "on lock upgrades",
            hint=f"Add to your settings, after DATABASES: {SQLITE_OPTIONS}",
            id="pipelines.W003",
        )
    ]


def check_value_depth(db: dict[str, Any], conf: PipelineSettings) -> list[CheckMessage]:
    if not db.get("ENGINE", "").endswith("mysql"):
        return []
    if conf.max_value_depth <= PORTABLE_MAX_VALUE_DEPTH:
        return []
    # The strict check would accept values that MariaDB then refuses mid-commit.
    return [
        Error(
            f"PIPELINES_MAX_VALUE_DEPTH is {conf.max_value_depth}; MariaDB stores values "
            f"nested at most {PORTABLE_MAX_VALUE_DEPTH} levels deep",
            hint=f"Set PIPELINES_MAX_VALUE_DEPTH to {PORTABLE_MAX_VALUE_DEPTH} or less.",
            id="pipelines.E004",
        )
    ]
