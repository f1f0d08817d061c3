"""Pipelines for the fault-injection suite. Steps report through files in
``PIPELINES_FAULT_DIR`` (Redis may be flushed or down mid-test)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from pipelines import Pipeline, Step, WaitForEvent, start


def fault_dir() -> Path:
    path = Path(os.environ.get("PIPELINES_FAULT_DIR", "/tmp/pipelines-faults"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def mark(run_id: int, event: str, **fields: Any) -> None:
    """Append one line to the run's log; O_APPEND keeps lines whole across processes."""
    details = " ".join(f"{k}={v}" for k, v in fields.items())
    with (fault_dir() / f"run-{run_id}.log").open("a") as log:
        log.write(f"{event} pid={os.getpid()} {details}\n")


def marks(run_id: int, event: str) -> list[dict[str, str]]:
    path = fault_dir() / f"run-{run_id}.log"
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        name, *pairs = line.split()
        if name == event:
            found.append(dict(pair.split("=", 1) for pair in pairs))
    return found


class Prepare(Step):
    def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.context.set("prepared", True)
        return payload


class Victim(Step):
    """Reports its pid (and database backend pid), then holds on its first attempt so the
    test can kill, stop or disconnect it."""

    retries = 2
    retry_backoff = 0.1

    def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        with connection.cursor() as cursor:
            backend = -1
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_backend_pid()")
                backend = cursor.fetchone()[0]
        mark(self.run.id, "victim-start", attempt=self.attempt, backend=backend)
        self.context.set("victim_attempt", self.attempt)
        if self.attempt == 1:
            time.sleep(payload.get("hold", 0))
        mark(self.run.id, "victim-end", attempt=self.attempt)
        return {"victim_attempt": self.attempt}


class Finish(Step):
    def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        mark(self.run.id, "finish")
        self.context.set("finished", True)
        return payload


class VictimPipeline(Pipeline):
    definition = start(Prepare).chain(Victim).chain(Finish)


class CommitThenDie(Step):
    """Dies right after its success commits, before the next step is enqueued."""

    def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        mark(self.run.id, "commit-then-die", attempt=self.attempt)
        self.context.set("written_once", self.attempt)
        from pipelines.engine.store import orm

        def die_after_commit(deliveries: Any) -> None:
            transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))

        # This work horse only: whichever store commits (both hand out what a commit
        # created through orm), it dies instead of enqueueing.
        orm.enqueue_on_commit = die_after_commit
        return {"ok": True}


class CommitThenDiePipeline(Pipeline):
    definition = start(Prepare).chain(CommitThenDie).chain(Finish)


class SelfKiller(Step):
    def execute(self, payload: Any) -> None:
        mark(self.run.id, "self-kill", attempt=self.attempt)
        os.kill(os.getpid(), signal.SIGKILL)


class SelfKillerPipeline(Pipeline):
    definition = start(Prepare).chain(SelfKiller).chain(Finish)


class Sleepy(Step):
    timeout = 1
    retries = 1
    retry_backoff = 0

    def execute(self, payload: Any) -> None:
        mark(self.run.id, "sleepy", attempt=self.attempt)
        time.sleep(5)


class TimeoutPipeline(Pipeline):
    definition = start(Prepare).chain(Sleepy)


class Book(Step):
    def execute(self, payload: Any) -> dict[str, str]:
        self.context.set("booking", "B-1")
        return {"booking": "B-1"}

    def compensate(self, output: dict[str, str]) -> None:
        mark(self.run.id, "compensate", step="Book", booking=output["booking"])
        self.context.set("booking_cancelled", output["booking"])


class Pay(Step):
    def execute(self, payload: Any) -> dict[str, str]:
        return {"payment": "P-1"}

    def compensate(self, output: dict[str, str]) -> None:
        mark(self.run.id, "compensate", step="Pay", payment=output["payment"])
        time.sleep(0.3)  # a refund takes a moment; Book must wait for it


class LongWork(Step):
    def execute(self, payload: Any) -> None:
        mark(self.run.id, "long-work")
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.cancelled:
                mark(self.run.id, "saw-cancel")
                return None
            time.sleep(0.1)
        return None


class Stubborn(Step):
    def execute(self, payload: Any) -> None:
        mark(self.run.id, "stubborn")
        time.sleep(60)  # ignores self.cancelled: must be stopped after the grace period


class Ship(Step):
    def execute(self, payload: Any) -> None:
        mark(self.run.id, "ship")


class CancelPipeline(Pipeline):
    definition = start(Book).chain(Pay).chain(LongWork).chain(Ship)


class StubbornCancelPipeline(Pipeline):
    definition = start(Book).chain(Stubborn).chain(Ship)


class AwaitApproval(Step):
    def execute(self, payload: dict[str, Any]) -> WaitForEvent:
        self.context.set("requested", True)
        return WaitForEvent("approved", timeout=payload.get("timeout"))


class Apply(Step):
    def execute(self, approval: dict[str, Any]) -> dict[str, Any]:
        return {"applied_by": approval["by"]}


class ApprovalPipeline(Pipeline):
    definition = start(Prepare).chain(AwaitApproval).chain(Apply)


class Fan(Step):
    def execute(self, payload: dict[str, Any]) -> list[int]:
        return list(range(payload["count"]))


class SlowItem(Step):
    def execute(self, item: int) -> int:
        mark(self.run.id, "item", item=item, attempt=self.attempt)
        time.sleep(0.4)
        return item * 10


class Collect(Step):
    def execute(self, outputs: list[int]) -> list[int]:
        self.context.set("collected", len(outputs))
        return outputs


class FanoutPipeline(Pipeline):
    definition = start(Fan).expand(SlowItem).collapse(Collect)


class Gate(Step):
    """Fails until the test opens the gate (a file): for resuming failed runs."""

    retries = 0

    def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        mark(self.run.id, "gate", attempt=self.attempt)
        if not (fault_dir() / f"gate-{self.run.id}").exists():
            raise RuntimeError("gate closed")
        self.context.set("gate_passed_on", self.attempt)
        return payload


class GatePipeline(Pipeline):
    definition = start(Prepare).chain(Gate).chain(Finish)


class SoakRetries(Step):
    """The soak's steps retry enough that random faults cannot fail a run."""

    retries = 5
    retry_backoff = 0.2


class SoakStep(SoakRetries):
    """One of five chained steps: writes a context key, works a little, logs its body run."""

    def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        mark(self.run.id, "body", step=type(self).__name__, attempt=self.attempt)
        self.context.set(type(self).__name__, self.attempt)
        time.sleep(payload["work"])
        return payload


class Soak1(SoakStep):
    pass


class Soak2(SoakStep):
    pass


class Soak3(SoakStep):
    pass


class Soak4(SoakStep):
    pass


class Soak5(SoakStep):
    pass


class SoakPipeline(Pipeline):
    definition = start(Soak1).chain(Soak2).chain(Soak3).chain(Soak4).chain(Soak5)


class SoakFan(SoakRetries):
    """Expands into ``items`` items (the soak's expand shape)."""

    def execute(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        mark(self.run.id, "body", step="SoakFan", attempt=self.attempt)
        return [{"i": i, "work": payload["work"]} for i in range(payload["items"])]


class SoakItem(SoakRetries):
    """One item: writes a context key of its own, works a little, logs its body run."""

    def execute(self, payload: dict[str, Any]) -> int:
        index = payload["i"]
        mark(self.run.id, "body", step=f"SoakItem{index}", attempt=self.attempt)
        self.context.set(f"item{index}", self.attempt)
        time.sleep(payload["work"])
        return int(index)


class SoakJoin(SoakRetries):
    def execute(self, outputs: list[int]) -> list[int]:
        mark(self.run.id, "body", step="SoakJoin", attempt=self.attempt)
        self.context.set("joined", len(outputs))
        return outputs


class SoakExpandPipeline(Pipeline):
    definition = start(SoakFan).expand(SoakItem).collapse(SoakJoin)


class GilHog(Step):
    """One long C call that holds the GIL: no other thread of its process runs meanwhile
    (its own heartbeat thread included)."""

    retries = 0

    def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        mark(self.run.id, "gil-start", attempt=self.attempt)
        total = sum(range(int(payload["n"])))
        mark(self.run.id, "gil-end", attempt=self.attempt)
        self.context.set("gil_attempt", self.attempt)
        return {"total": total}


class GilPipeline(Pipeline):
    definition = start(Prepare).chain(GilHog).chain(Finish)
