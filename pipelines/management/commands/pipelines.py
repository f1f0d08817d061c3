"""``python manage.py pipelines <sub>``: see and steer pipelines from a shell.

Readable tables by default, ``--json`` for scripts; errors go to stderr with a non-zero
exit and say how to fix them. The help (descriptions, examples) is in ``cli_help``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pipelines import registry, selectors, services
from pipelines.engine import doctor
from pipelines.engine.sweeper import sweep
from pipelines.exceptions import PipelineError
from pipelines.graph_svg import render_text
from pipelines.inputs import parse_count, parse_id, parse_json_text, parse_text
from pipelines.lifecycle import TERMINAL_RUN_STATUSES, RunStatus, run_state
from pipelines.management.cli_help import HELP, OVERVIEW, PROG
from pipelines.management.generator import generate_pipeline
from pipelines.management.run_output import (
    NO_DASHBOARD,
    error_line,
    run_dict,
    show_data,
    summary,
    table,
    with_progress,
)
from pipelines.management.terminal import SafeParser, make_safe, printable
from pipelines.management.worker_options import add_worker_arguments, run_worker
from pipelines.masking import mask_text
from pipelines.models import PipelineRun
from pipelines.timestamps import timestamp

MAX_LIMIT = 10_000
MAX_SHOWN_STEPS = 200
EXIT_WAIT_TIMEOUT = 3  # documented in cli_help.EXIT_STATUS
POLL_SECONDS = 0.2


def _run_id(value: str) -> int:
    return parse_id(value, what="RUN")


def _existing(run_id: int) -> PipelineRun:
    try:
        return with_progress(run_id)
    except PipelineRun.DoesNotExist:
        raise CommandError(f"no run with id {run_id}; list runs with: {PROG} runs") from None


class Command(BaseCommand):
    help = OVERVIEW

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = make_safe(super().create_parser(prog_name, subcommand, **kwargs))
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        subs = parser.add_subparsers(
            dest="sub", required=True, metavar="SUBCOMMAND", parser_class=SafeParser
        )

        def sub(name: str, *aliases: str) -> CommandParser:
            text = HELP[name]
            p = subs.add_parser(
                name,
                aliases=list(aliases),
                help=text.summary,
                description=text.wrapped(),
                epilog=text.epilog(),
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
            if name != "worker":  # a worker prints its log, not a result
                p.add_argument("--json", action="store_true", help="Machine-readable output.")
            return p

        def run_arg(p: CommandParser) -> CommandParser:
            p.add_argument("run", metavar="RUN", help="A run id (see: pipelines runs).")
            return p

        def url_arg(p: CommandParser) -> CommandParser:
            p.add_argument(
                "--base-url",
                default=None,
                help="Scheme and host of the dashboard for the run's URL, e.g. "
                "https://ops.example.com (default: the PIPELINES_DASHBOARD_URL setting).",
            )
            return p

        sub("list")
        sub("graph").add_argument("name", metavar="NAME", help="A pipeline's name.")
        trigger = url_arg(sub("trigger"))
        trigger.add_argument("name", metavar="NAME", help="The pipeline to run (see: list).")
        trigger.add_argument("--input", default="null", help="JSON input (default: null).")
        trigger.add_argument(
            "--idempotency-key",
            default=None,
            help="Trigger once per key: the same key and input return the existing run.",
        )
        trigger.add_argument(
            "--wait", action="store_true", help="Wait for the run to finish (see exit status)."
        )
        trigger.add_argument(
            "--timeout",
            type=float,
            default=600.0,
            help="Seconds --wait waits before giving up with exit status 3 (default: 600).",
        )
        runs = url_arg(sub("runs"))
        runs.add_argument("--status", choices=RunStatus.values, help="Only runs in this status.")
        runs.add_argument("--pipeline", help="Only runs of this pipeline.")
        runs.add_argument("--limit", default="20", help=f"1 to {MAX_LIMIT} (default: 20).")
        run_arg(url_arg(sub("show")))
        cancel = run_arg(sub("cancel"))
        cancel.add_argument(
            "--reason",
            default="cancelled from the command line",
            help="Recorded as the run's error.",
        )
        run_arg(sub("retry", "resume"))
        run_arg(url_arg(sub("rerun")))
        event = run_arg(sub("send-event"))
        event.add_argument("name", metavar="NAME", help="The event's name (WaitForEvent).")
        event.add_argument("--payload", default="null", help="JSON payload (default: null).")
        sub("recover")
        new = sub("new")
        new.add_argument("name", metavar="NAME", help="Pipeline class name, e.g. ImportInvoices")
        new.add_argument("--app", required=True, help="Installed app label, e.g. shop")
        add_worker_arguments(sub("worker"))
        sub("doctor")

    def handle(self, *args: Any, **options: Any) -> None:
        handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "list": self._list,
            "graph": self._graph,
            "trigger": self._trigger,
            "runs": self._runs,
            "show": self._show,
            "cancel": lambda o: self._act(
                o, lambda r: services.run_cancel(run_id=r, reason=o["reason"])
            ),
            "retry": lambda o: self._act(o, lambda r: services.run_resume(run_id=r)),
            "rerun": lambda o: self._act(o, lambda r: services.run_rerun(run_id=r)),
            "send-event": self._send_event,
            "recover": self._recover,
            "new": self._new,
            "worker": lambda o: run_worker(o, verbosity=o["verbosity"]),
            "doctor": self._doctor,
        }
        handlers["resume"] = handlers["retry"]
        try:
            result = handlers[options["sub"]](options)
        except PipelineError as exc:
            raise CommandError(printable(mask_text(str(exc)))) from None
        self._print(result, options)
        if options["sub"] == "trigger" and options["wait"]:
            self._exit_for(result[0])

    def _print(self, result: Any, options: dict[str, Any]) -> None:
        if options.get("json"):
            text = json.dumps(
                result[0] if isinstance(result, tuple) else result,
                indent=2,
                ensure_ascii=False,
                default=str,
            )
        else:
            text = result[1] if isinstance(result, tuple) else str(result)
        self.stdout.write(printable(text))

    def _exit_for(self, data: dict[str, Any]) -> None:
        if data["status"] == RunStatus.SUCCEEDED:
            return
        if data["status"] not in TERMINAL_RUN_STATUSES:
            raise CommandError(
                f"run {data['id']} {run_state(data['status'])} after --timeout; it goes on "
                f"(see: {PROG} show {data['id']})",
                returncode=EXIT_WAIT_TIMEOUT,
            )
        raise CommandError(
            printable(f"run {data['id']} {run_state(data['status'])}: {error_line(data['error'])}")
        )

    def _list(self, options: dict[str, Any]) -> tuple[Any, str]:
        rows = [
            {
                "name": p.name,
                "module": p.__module__,
                "steps": len(p.graph.nodes),
                "first": p.graph.entry,
                "on_halt": p.graph.halt.step.__name__ if p.graph.halt else None,
            }
            for p in registry.all_pipelines()
        ]
        text = table(
            [[r["name"], str(r["steps"]), r["module"], r["on_halt"] or "-"] for r in rows],
            ["pipeline", "steps", "module", "on halt"],
        )
        return rows, text

    def _graph(self, options: dict[str, Any]) -> tuple[Any, str]:
        graph = registry.get(options["name"]).graph
        picture = render_text(graph)
        nodes = [*graph.nodes.values(), *([graph.halt] if graph.halt else [])]
        data = {
            "pipeline": graph.pipeline,
            "entry": graph.entry,
            "halt": graph.halt.id if graph.halt else None,
            "nodes": [
                {
                    "id": n.id,
                    "step": f"{n.step.__module__}.{n.step.__qualname__}",
                    "label": n.label,
                    "transition": {"kind": type(n.transition).__name__.lower()}
                    | asdict(n.transition),
                }
                for n in nodes
            ],
            "text": picture.splitlines(),
        }
        return data, picture

    def _trigger(self, options: dict[str, Any]) -> tuple[Any, str]:
        registry.get(options["name"])  # unknown names fail before the input is parsed
        data = parse_json_text(options["input"], what="--input")
        if options["timeout"] <= 0:
            raise CommandError(f"--timeout must be more than 0 seconds, got {options['timeout']}")
        run = services.run_trigger(
            pipeline=options["name"], input=data, idempotency_key=options["idempotency_key"]
        )
        if options["wait"]:
            deadline = time.monotonic() + options["timeout"]
            while run.refresh().status not in TERMINAL_RUN_STATUSES:
                if time.monotonic() > deadline:
                    break
                time.sleep(POLL_SECONDS)
        return self._run_result(run.pk, options)

    def _run_result(self, run_id: int, options: dict[str, Any]) -> tuple[Any, str]:
        run = with_progress(run_id)
        data = run_dict(run, base_url=options.get("base_url"))
        text = f"{summary(run)}\n{data['url'] or NO_DASHBOARD}"
        if run.error:
            text += f"\nerror: {error_line(run.error)}"
        return data, text

    def _runs(self, options: dict[str, Any]) -> tuple[Any, str]:
        limit = parse_count(options["limit"], what="--limit", maximum=MAX_LIMIT)
        pipeline = parse_text(options.get("pipeline") or "", what="--pipeline")
        if pipeline and not PipelineRun.objects.filter(pipeline=pipeline).exists():
            registry.get(pipeline)  # "unknown pipeline 'Nope' (known: ...)"
        queryset = selectors.runs_list(pipeline=pipeline, status=options.get("status") or "")
        runs = list(queryset[:limit])
        text = table(
            [
                [
                    str(r.pk),
                    r.pipeline,
                    r.status,
                    f"{getattr(r, 'steps_done', '?')}/{getattr(r, 'steps_total', '?')}",
                    timestamp(r.created_at),
                    error_line(r.error or ""),
                ]
                for r in runs
            ],
            ["run", "pipeline", "status", "steps", "created", "error"],
        )
        data = [run_dict(r, base_url=options.get("base_url")) for r in runs]
        return data, text if runs else "no runs"

    def _show(self, options: dict[str, Any]) -> tuple[Any, str]:
        run = _existing(_run_id(options["run"]))
        return show_data(run, base_url=options.get("base_url"), max_steps=MAX_SHOWN_STEPS)

    def _act(self, options: dict[str, Any], action: Callable[[int], PipelineRun]) -> Any:
        run = _existing(_run_id(options["run"]))
        result = action(run.pk)
        return self._run_result(result.pk, options)

    def _send_event(self, options: dict[str, Any]) -> Any:
        run = _existing(_run_id(options["run"]))
        payload = parse_json_text(options["payload"], what="--payload")
        services.run_send_event(run_id=run.pk, name=options["name"], payload=payload)
        data, text = self._run_result(run.pk, options)
        return data, f"event {options['name']!r} delivered; {text}"

    def _recover(self, options: dict[str, Any]) -> tuple[Any, str]:
        report = sweep()
        return asdict(report), f"recovery pass done: {report}"

    def _new(self, options: dict[str, Any]) -> tuple[Any, str]:
        written = generate_pipeline(name=options["name"], app_label=options["app"])
        text = (
            "wrote:\n"
            + "\n".join(f"  {path}" for path in written)
            + "\nRestart your pipelines workers so they load the new pipeline."
        )
        return {"written": [str(path) for path in written]}, text

    def _doctor(self, options: dict[str, Any]) -> tuple[Any, str]:
        problems = doctor.diagnose()
        data = [{"queue": p.queue, "problem": p.message, "hint": p.hint} for p in problems]
        if problems:
            raise CommandError(
                f"{len(problems)} problem(s):\n" + "\n".join(f"{p}\n  {p.hint}" for p in problems)
            )
        queues = ", ".join(doctor.pipeline_queues())
        return data, f"ok: every pipelines queue ({queues}) is served by pipelines workers"
