"""No-op pipelines the benchmarks measure: the cost is the engine's, not the work's."""

from __future__ import annotations

from typing import Any

from pipelines import Pipeline, Step, start


class Noop(Step):
    def execute(self, payload: Any) -> Any:
        return payload


class NoopB(Noop):
    pass


class Items(Step):
    def execute(self, payload: dict[str, int]) -> list[int]:
        return list(range(payload["count"]))


class Gather(Step):
    def execute(self, outputs: list[Any]) -> int:
        return len(outputs)


class Chain10(Pipeline):
    definition = (
        start(Noop)
        .chain(NoopB)
        .chain(Noop)
        .chain(NoopB)
        .chain(Noop)
        .chain(NoopB)
        .chain(Noop)
        .chain(NoopB)
        .chain(Noop)
        .chain(NoopB)
    )


class Fanout(Pipeline):
    definition = start(Items).expand(Noop).collapse(Gather)
