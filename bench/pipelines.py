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


class Remember(Step):
    """Reads the value the previous step stored and stores the payload's value under a
    new key: one context read and one write per step, of whatever size the payload has."""

    def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        index = payload["i"]
        if index:
            assert self.context.get(f"k{index - 1}") == payload["value"]
        self.context.set(f"k{index}", payload["value"])
        return {"i": index + 1, "value": payload["value"]}


class RememberB(Remember):
    pass


class ContextChain10(Pipeline):
    definition = (
        start(Remember)
        .chain(RememberB)
        .chain(Remember)
        .chain(RememberB)
        .chain(Remember)
        .chain(RememberB)
        .chain(Remember)
        .chain(RememberB)
        .chain(Remember)
        .chain(RememberB)
    )
