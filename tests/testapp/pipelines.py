"""Pipelines used by the integration and acceptance tests; workers import them too."""

from __future__ import annotations

import time
from typing import Any

import django_rq

from pipelines import OverwriteError, Pipeline, Route, Step, WaitForEvent, start


def bump(name: str) -> int:
    """Count body executions across processes (Redis, visible to the test)."""
    return int(django_rq.get_connection("pipelines").incr(f"test:count:{name}"))


class Add(Step):
    def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"n": payload["n"] + 1, "seen": [*payload.get("seen", []), type(self).__name__]}


class AddAgain(Add):
    pass


class Double(Step):
    def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.context.set(f"double-{payload['n']}", payload["n"] * 2)
        return {"n": payload["n"] * 2, "seen": [*payload["seen"], "Double"]}


class ChainPipeline(Pipeline):
    definition = start(Add).chain(AddAgain).chain(Double)


class SlowLabel(Step):
    def execute(self, payload: Any) -> str:
        time.sleep(0.6)  # finishes last, yet its output must come first
        return "slow"


class FastLabel(Step):
    def execute(self, payload: Any) -> str:
        return "fast"


class Prefix(Step):
    def execute(self, payload: Any) -> str:
        return "sub"


class Suffix(Step):
    def execute(self, payload: str) -> str:
        return payload + "-flow"


class Gather(Step):
    def execute(self, outputs: list[Any]) -> list[Any]:
        return outputs


class DividePipeline(Pipeline):
    definition = (
        start(Add).divide([SlowLabel, FastLabel, start(Prefix).chain(Suffix)]).combine(Gather)
    )


class Items(Step):
    def execute(self, payload: dict[str, Any]) -> list[int]:
        return list(range(payload["count"]))


class Square(Step):
    def execute(self, item: int) -> int:
        # Later elements finish first; collapse must still see element order.
        time.sleep(max(0.0, 0.05 * (5 - item)))
        return item * item


class ExpandPipeline(Pipeline):
    definition = start(Items).expand(Square).collapse(Gather)


class Decide(Step):
    def execute(self, payload: dict[str, Any]) -> Any:
        if payload.get("route"):
            return Route(payload["route"], {"via": "route"})
        return payload["choice"]


class RouteA(Step):
    def execute(self, payload: Any) -> dict[str, Any]:
        return {"branch": "a", "got": payload}


class RouteB1(Step):
    def execute(self, payload: Any) -> dict[str, Any]:
        return {"branch": "b1", "got": payload}


class RouteB2(Step):
    def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"branch": "b2", "from": payload["branch"]}


class Otherwise(Step):
    def execute(self, payload: Any) -> dict[str, Any]:
        return {"branch": "otherwise", "got": payload}


class Converged(Step):
    def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"converged": payload}


class DivertPipeline(Pipeline):
    definition = (
        start(Decide)
        .divert({"a": RouteA, "b": start(RouteB1).chain(RouteB2)}, otherwise=Otherwise)
        .converge(Converged)
    )


class DivertEndPipeline(Pipeline):
    definition = start(Decide).divert({"a": RouteA}, otherwise=Otherwise)


class Identity(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class NestedPipeline(Pipeline):
    """A divide whose second branch is itself an expand/collapse sub-flow."""

    definition = (
        start(Identity)
        .divide([FastLabel, start(Items).expand(Square).collapse(Gather)])
        .combine(Gather)
    )


class Explode(Step):
    retries = 1
    retry_backoff = 0

    def execute(self, payload: Any) -> None:
        self.context.set(f"explode-attempt-{self.attempt}", self.attempt)
        raise RuntimeError(f"boom on attempt {self.attempt}")


class RecordHalt(Step):
    def execute(self, failure: dict[str, Any]) -> str:
        bump(f"halt-{failure['run_id']}")
        self.context.set("halted_because", failure["error"])
        return "handled"


class FailingPipeline(Pipeline):
    definition = start(Add).chain(Explode).chain(AddAgain).on_halt(RecordHalt)


class FlakyWriter(Step):
    """Stages writes, then fails on its first attempt; the retry writes the same keys."""

    retries = 2
    retry_backoff = 0.2

    def execute(self, payload: Any) -> dict[str, int]:
        self.context.set("written_by_attempt", self.attempt)
        self.context.set("shared", {"attempt": self.attempt})
        if self.attempt == 1:
            raise ConnectionError("flaky service")
        return {"attempt": self.attempt}


class FlakyPipeline(Pipeline):
    definition = start(FlakyWriter)


class SlowOnce(Step):
    def execute(self, payload: dict[str, Any]) -> int:
        count = bump(payload["counter"])
        time.sleep(1.0)  # long enough for a duplicate delivery to arrive meanwhile
        return count


class DuplicatePipeline(Pipeline):
    definition = start(SlowOnce)


RACE_KEYS = [f"race-{i}" for i in range(6)]


class Racer(Step):
    """Every branch tries to take the same keys; each must win or see OverwriteError."""

    def execute(self, payload: Any) -> dict[str, Any]:
        won: list[str] = []
        lost: list[str] = []
        for key in RACE_KEYS:
            try:
                self.context.set(key, self.idempotency_key)
                won.append(key)
            except OverwriteError:
                lost.append(key)
        time.sleep(0.05)
        return {"me": self.idempotency_key, "won": won, "lost": lost}


class RacePipeline(Pipeline):
    definition = start(FastLabel).divide([Racer] * 8).combine(Gather)


class TooMany(Step):
    def execute(self, payload: Any) -> list[int]:
        return list(range(51))  # tests set PIPELINES_MAX_EXPAND = 50


class TooManyPipeline(Pipeline):
    definition = start(TooMany).expand(Square).collapse(Gather).on_halt(RecordHalt)


class NotAList(Step):
    def execute(self, payload: Any) -> dict[str, int]:
        return {"not": 1}


class NotAListPipeline(Pipeline):
    definition = start(NotAList).expand(Square).collapse(Gather)


class OtherQueueStep(Step):
    queue = "other"

    def execute(self, payload: Any) -> str:
        return "ran on other"


class OtherQueuePipeline(Pipeline):
    definition = start(OtherQueueStep)


class SneakyRival(Step):
    """Stages a key, then (first time only) lets a rival commit the same key before this
    step's commit: the body must be re-run and meet OverwriteError at its set() call."""

    def execute(self, payload: Any) -> dict[str, Any]:
        body_runs = bump(f"sneaky-{self.run.id}")
        token = payload.pop("token")  # a re-run must get the payload afresh
        try:
            self.context.set("contested", "mine")
        except OverwriteError as exc:
            return {"lost": str(exc), "body_runs": body_runs, "token": token}
        if body_runs == 1:
            from pipelines.models import PipelineRun

            PipelineRun.objects.get(pk=self.run.id).context.set("contested", "rival")
        return {"won": True, "body_runs": body_runs}


class SneakyPipeline(Pipeline):
    definition = start(SneakyRival)


def planted_callback(*args: Any, **kwargs: Any) -> None:
    bump("planted-callback")


class BadRoute(Step):
    def execute(self, payload: Any) -> Route:
        return Route(["not", "a", "key"], payload)  # type: ignore[arg-type]


class BadRoutePipeline(Pipeline):
    definition = start(BadRoute).divert({"a": RouteA}, otherwise=Otherwise).on_halt(RecordHalt)


class _Witness(Step):
    """Records, as ``repr`` strings (which tell 1e20 from 10**20, -0.0 from 0.0 and show
    key order), the payload it got and the context values named by the payload's keys."""

    def witness(self, payload: Any, table: dict[str, Any]) -> None:
        context = {name: self.context.get(name) for name in table}
        self.context.set(
            f"seen by {type(self).__name__}", {"payload": repr(payload), "context": repr(context)}
        )


class StoreValues(_Witness):
    def execute(self, table: dict[str, Any]) -> dict[str, Any]:
        for name, value in table.items():
            self.context.set(name, value)
        self.witness(table, table)  # the context as staged in this attempt
        return table


class SeeValues(_Witness):
    def execute(self, table: dict[str, Any]) -> dict[str, Any]:
        self.witness(table, table)
        return table


class AwaitValues(Step):
    def execute(self, table: dict[str, Any]) -> WaitForEvent:
        return WaitForEvent("values")


class SeeValuesB(SeeValues):
    pass


class SeeValuesC(SeeValues):
    pass


class CollectValues(_Witness):
    def execute(self, tables: list[dict[str, Any]]) -> dict[str, Any]:
        self.witness(tables, tables[0])
        return tables[0]


class KeepValue(Step):
    def execute(self, payload: Any) -> Any:
        self.context.set("kept", payload)
        return payload


class KeepPipeline(Pipeline):
    definition = start(KeepValue).chain(Identity)


class RoundTripPipeline(Pipeline):
    """Every way a value travels: trigger input, step output to payload, context writes
    and reads, an event payload, divide and combine, the run's output."""

    definition = (
        start(StoreValues)
        .chain(SeeValues)
        .chain(AwaitValues)
        .divide([SeeValuesB, SeeValuesC])
        .combine(CollectValues)
    )


from tests.testapp import fault_pipelines  # noqa: E402,F401 - registers the fault pipelines


class Reserve(Step):
    def execute(self, payload: Any) -> dict[str, str]:
        return {"reservation": "R-1"}

    def compensate(self, output: dict[str, str]) -> None:
        self.context.set("released", output["reservation"])


class Charge(Step):
    retries = 0

    def execute(self, payload: Any) -> dict[str, str]:
        return {"charge": "C-1"}

    def compensate(self, output: dict[str, str]) -> None:
        raise RuntimeError(f"refund of {output['charge']} bounced")


class Explodes(Step):
    retries = 0

    def execute(self, payload: Any) -> None:
        raise ValueError("out of stock")


class SagaPipeline(Pipeline):
    definition = start(Reserve).chain(Charge).chain(Explodes).on_halt(RecordHalt)


from tests.testapp import (  # noqa: E402 - registers the deploy and leak probe pipelines
    deploy_pipelines,  # noqa: F401
    leak_pipelines,  # noqa: F401
)


class SlowThenFail(Step):
    """Long enough for a browser to open the run page while it runs; then fails."""

    retries = 0

    def execute(self, payload: Any) -> None:
        time.sleep(float(payload.get("sleep", 2.0)))
        raise ValueError("card declined after the page was opened")


class SlowFailingPipeline(Pipeline):
    definition = start(SlowThenFail)


class WriteFirst(Step):
    def execute(self, payload: Any) -> Any:
        self.context.set("state", "new")
        return payload


class Rewrite(Step):
    def execute(self, payload: Any) -> Any:
        self.context.set("state", {"final": True}, overwrite=True)
        self.context.set("note", "rewritten")
        return payload


class OverwritePipeline(Pipeline):
    definition = start(WriteFirst).chain(Rewrite)
