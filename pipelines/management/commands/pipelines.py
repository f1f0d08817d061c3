"""``python manage.py pipelines <sub>``: steer runs from a shell."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pipelines import services
from pipelines.exceptions import PipelineError
from pipelines.models import PipelineRun


def _run_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise CommandError(f"RUN must be a run id (a number), got {value!r}") from None


def _existing(run_id: int) -> PipelineRun:
    try:
        return PipelineRun.objects.get(pk=run_id)
    except PipelineRun.DoesNotExist:
        raise CommandError(
            f"no run with id {run_id}; list runs with the admin or the dashboard"
        ) from None


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


class Command(BaseCommand):
    help = "Steer pipeline runs: recover, cancel, resume, rerun, send-event."

    def add_arguments(self, parser: CommandParser) -> None:
        subs = parser.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
        subs.add_parser(
            "recover",
            help="One sweeper pass: reclaim dead workers' steps, re-enqueue lost jobs, "
            "expire event waits, stop cancelled steps.",
        )
        cancel = subs.add_parser("cancel", help="Cancel a run (its compensations run).")
        cancel.add_argument("run")
        cancel.add_argument("--reason", default="cancelled from the command line")
        resume = subs.add_parser("resume", help="Resume a failed run from its failed steps.")
        resume.add_argument("run")
        rerun = subs.add_parser("rerun", help="Start a new run with the same input.")
        rerun.add_argument("run")
        event = subs.add_parser("send-event", help="Deliver an event to a waiting run.")
        event.add_argument("run")
        event.add_argument("name")
        event.add_argument("--payload", default="null", help="JSON payload (default: null).")

    def handle(self, *args: Any, **options: Any) -> None:
        handlers: dict[str, Callable[[dict[str, Any]], str]] = {
            "recover": self._recover,
            "cancel": lambda o: self._act(
                o, lambda r: services.run_cancel(run_id=r, reason=o["reason"])
            ),
            "resume": lambda o: self._act(o, lambda r: services.run_resume(run_id=r)),
            "rerun": lambda o: self._act(o, lambda r: services.run_rerun(run_id=r)),
            "send-event": self._send_event,
        }
        try:
            self.stdout.write(handlers[options["sub"]](options))
        except PipelineError as exc:
            raise CommandError(str(exc)) from None

    def _recover(self, options: dict[str, Any]) -> str:
        from pipelines.engine.sweeper import sweep

        return f"recovery pass done: {sweep()}"

    def _act(self, options: dict[str, Any], action: Callable[[int], PipelineRun]) -> str:
        run = _existing(_run_id(options["run"]))
        result = action(run.pk)
        result.refresh_from_db()
        return f"run {result.pk} ({result.pipeline}): {result.status}"

    def _send_event(self, options: dict[str, Any]) -> str:
        run = _existing(_run_id(options["run"]))
        payload = _json_arg(options["payload"], "--payload")
        result = services.run_send_event(run_id=run.pk, name=options["name"], payload=payload)
        result.refresh_from_db()
        return f"run {result.pk}: event {options['name']!r} delivered; run is {result.status}"
