"""A pipeline that a deploy changes while runs are in flight. ``PIPELINES_TEST_DEPLOY``
says which release a process runs: v1 (the default) or v2, which inserts a step, reroutes
the rest and removes a step class."""

from __future__ import annotations

import os
from typing import Any

from pipelines import Pipeline, Step, start

RELEASE = os.environ.get("PIPELINES_TEST_DEPLOY", "v1")


class _Trace(Step):
    """Appends its name and the release that ran it to the payload."""

    def execute(self, payload: list[str]) -> list[str]:
        return [*payload, f"{type(self).__name__}@{RELEASE}"]


class Open(_Trace):
    pass


class Check(_Trace):
    pass


class Close(_Trace):
    pass


class Audit(_Trace):
    pass


if RELEASE == "v1":

    class Retired(_Trace):
        """Removed by the v2 deploy."""

    class DeployPipeline(Pipeline):
        definition = start(Open).chain(Check).chain(Close)

    class RetiringPipeline(Pipeline):
        definition = start(Open).chain(Retired)

else:

    class DeployPipeline(Pipeline):  # type: ignore[no-redef]
        definition = start(Open).chain(Audit).chain(Close).chain(Check)

    class RetiringPipeline(Pipeline):  # type: ignore[no-redef]
        definition = start(Open).chain(Close)


def trace(run: Any) -> list[str]:
    return list(run.output or [])
