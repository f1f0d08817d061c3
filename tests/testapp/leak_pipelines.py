"""Pipelines that spread credentials everywhere a value can go: the leak probe of
tests/integration/test_leaks.py."""

from __future__ import annotations

from typing import Any

from pipelines import Pipeline, Step, WaitForEvent, start


class Echo(Step):
    """Copies every input key into the context, logs the input, returns it."""

    def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.logger.info("echoing %r", payload)
        for key, value in payload.items():
            self.context.set(key, value)
        return dict(payload)


class AwaitSecrets(Step):
    def execute(self, payload: dict[str, Any]) -> WaitForEvent:
        return WaitForEvent("secrets")


class Finish(Step):
    def execute(self, event: dict[str, Any]) -> dict[str, Any]:
        self.logger.info("event payload %s", event)
        return {"event": event, "echo": self.context.get("echo")}


class LeakPipeline(Pipeline):
    definition = start(Echo).chain(AwaitSecrets).chain(Finish)


class Explode(Step):
    retries = 0

    def execute(self, payload: dict[str, Any]) -> None:
        raise RuntimeError(payload["message"])


class ExplodingPipeline(Pipeline):
    definition = start(Explode)
