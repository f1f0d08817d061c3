"""``python manage.py pipelines <sub>``: see and steer pipelines from a shell.

Readable tables by default, ``--json`` for scripts; errors go to stderr with a non-zero
exit and say how to fix them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pipelines import registry, selectors, services
from pipelines.engine import doctor
from pipelines.engine.sweeper import sweep
from pipelines.exceptions import PipelineError
from pipelines.graph_svg import render_text
from pipelines.inputs import parse_count, parse_id, parse_json_text, parse_text
from pipelines.management.generator import generate_pipeline
from pipelines.management.terminal import SafeParser, make_safe, one_line, printable
from pipelines.management.worker_options import add_worker_arguments, run_worker
from pipelines.masking import mask, mask_text
from pipelines.models import PipelineRun, RunStatus

MAX_LIMIT = 10_000


def _run_id(value: str) -> int:
    return parse_id(value, what="RUN")


def _existing(run_id: int) -> PipelineRun:
    try:
        return PipelineRun.objects.get(pk=run_id)
    except PipelineRun.DoesNotExist:
        raise CommandError(
            f"no run with id {run_id}; list runs with: python manage.py pipelines runs"
        ) from None


def _json_arg(text: str, what: str) -> Any:
    return parse_json_text(text, what=what)


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    rows = [[one_line(c) for c in row] for row in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _run_dict(run: PipelineRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "pipeline": run.pipeline,
        "status": run.status,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "idempotency_key": mask_text(run.idempotency_key or "") or None,
        "steps_done": getattr(run, "steps_done", None),
        "steps_total": getattr(run, "steps_total", None),
        "error": mask_text(run.error),
    }


class Command(BaseCommand):
    help = (
        "See and steer pipelines: list, graph, trigger, runs, show, cancel, retry, resume, "
        "rerun, send-event, recover, new, worker, doctor."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        return make_safe(super().create_parser(prog_name, subcommand, **kwargs))

    def add_arguments(self, parser: CommandParser) -> None:
        subs = parser.add_subparsers(
            dest="sub", required=True, metavar="SUBCOMMAND", parser_class=SafeParser
        )

        def sub(name: str, help: str, json_output: bool = True) -> CommandParser:
            p = subs.add_parser(name, help=help)
            if json_output:
                p.add_argument("--json", action="store_true", help="Machine-readable output.")
            return p

        sub("list", "The registered pipelines.")
        sub("graph", "A text picture of a pipeline's graph.", False).add_argument("name")
        trigger = sub("trigger", "Start a run.")
        trigger.add_argument("name")
        trigger.add_argument("--input", default="null", help="JSON input (default: null).")
        trigger.add_argument("--idempotency-key", default=None)
        runs = sub("runs", "Recent runs, newest first.")
        runs.add_argument("--status", choices=RunStatus.values)
        runs.add_argument("--pipeline")
        runs.add_argument("--limit", default="20", help=f"1 to {MAX_LIMIT} (default: 20).")
        sub("show", "A run: status, steps, context.").add_argument("run")
        cancel = sub("cancel", "Cancel a run (its compensations run).")
        cancel.add_argument("run")
        cancel.add_argument("--reason", default="cancelled from the command line")
        for name in ("retry", "resume"):
            sub(name, "Retry a failed run from its failed steps.").add_argument("run")
        sub("rerun", "Start a new run with the same input.").add_argument("run")
        event = sub("send-event", "Deliver an event to a waiting run.")
        event.add_argument("run")
        event.add_argument("name")
        event.add_argument("--payload", default="null", help="JSON payload (default: null).")
        sub("recover", "One sweeper pass: reclaim, re-enqueue, expire waits.", False)
        new = sub("new", "Write a pipeline module skeleton and a test for it.", False)
        new.add_argument("name", help="Pipeline class name, e.g. ImportInvoices")
        new.add_argument("--app", required=True, help="Installed app label, e.g. shop")
        add_worker_arguments(sub("worker", "Run a pipelines worker (engine jobs, JSON).", False))
        sub("doctor", "Is every pipelines queue served by a pipelines worker?")

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
            "resume": lambda o: self._act(o, lambda r: services.run_resume(run_id=r)),
            "rerun": lambda o: self._act(o, lambda r: services.run_rerun(run_id=r)),
            "send-event": self._send_event,
            "recover": self._recover,
            "new": self._new,
            "worker": lambda o: run_worker(o, verbosity=o["verbosity"]),
            "doctor": self._doctor,
        }
        try:
            result = handlers[options["sub"]](options)
        except PipelineError as exc:
            raise CommandError(printable(mask_text(str(exc)))) from None
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
        table = _table(
            [[r["name"], str(r["steps"]), r["module"], r["on_halt"] or "-"] for r in rows],
            ["pipeline", "steps", "module", "on halt"],
        )
        return rows, table

    def _graph(self, options: dict[str, Any]) -> str:
        return render_text(registry.get(options["name"]).graph)

    def _trigger(self, options: dict[str, Any]) -> tuple[Any, str]:
        registry.get(options["name"])  # unknown names fail before the input is parsed
        data = _json_arg(options["input"], "--input")
        run = services.run_trigger(
            pipeline=options["name"], input=data, idempotency_key=options["idempotency_key"]
        )
        return _run_dict(run), f"run {run.pk} ({run.pipeline}): {run.status}"

    def _runs(self, options: dict[str, Any]) -> tuple[Any, str]:
        limit = parse_count(options["limit"], what="--limit", maximum=MAX_LIMIT)
        queryset = selectors.runs_list(
            pipeline=parse_text(options.get("pipeline") or "", what="--pipeline"),
            status=options.get("status") or "",
        )[:limit]
        runs = list(queryset)
        table = _table(
            [
                [
                    str(r.pk),
                    r.pipeline,
                    r.status,
                    f"{getattr(r, 'steps_done', '?')}/{getattr(r, 'steps_total', '?')}",
                    r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    mask_text(r.error or "")[:60],
                ]
                for r in runs
            ],
            ["run", "pipeline", "status", "steps", "created", "error"],
        )
        return [_run_dict(r) for r in runs], table if runs else "no runs"

    def _show(self, options: dict[str, Any]) -> tuple[Any, str]:
        run = _existing(_run_id(options["run"]))
        steps = list(selectors.run_steps(run_id=run.pk)[:200])
        entries = selectors.run_context_entries(run_id=run.pk)
        data = {
            **_run_dict(run),
            "input": mask(run.input),
            "output": mask(run.output),
            "steps": [
                {
                    "id": s.pk,
                    "node": s.node,
                    "kind": s.kind,
                    "status": s.status,
                    "attempts": s.attempt,
                    "error": mask_text(s.error),
                }
                for s in steps
            ],
            "context": {e.key: {"value": e.value, "written_by": e.writer} for e in entries},
        }
        lines = [f"run {run.pk} ({run.pipeline}): {run.status}"]
        if run.error:
            lines.append(f"error: {one_line(mask_text(run.error))}")
        lines += [
            "",
            _table(
                [
                    [str(s.pk), s.node, s.kind, s.status, str(s.attempt), mask_text(s.error)[:50]]
                    for s in steps
                ],
                ["id", "step", "kind", "status", "attempts", "error"],
            ),
            "",
            "context:",
        ]
        lines += [
            f"  {one_line(e.key)} = {one_line(json.dumps(e.value, ensure_ascii=False))}  "
            f"[{e.writer}]"
            for e in entries
        ] or ["  (empty)"]
        return data, "\n".join(lines)

    def _act(self, options: dict[str, Any], action: Callable[[int], PipelineRun]) -> Any:
        run = _existing(_run_id(options["run"]))
        result = action(run.pk)
        result.refresh_from_db()
        return _run_dict(result), f"run {result.pk} ({result.pipeline}): {result.status}"

    def _send_event(self, options: dict[str, Any]) -> Any:
        run = _existing(_run_id(options["run"]))
        payload = _json_arg(options["payload"], "--payload")
        result = services.run_send_event(run_id=run.pk, name=options["name"], payload=payload)
        result.refresh_from_db()
        text = f"run {result.pk}: event {options['name']!r} delivered; run is {result.status}"
        return _run_dict(result), text

    def _recover(self, options: dict[str, Any]) -> str:
        return f"recovery pass done: {sweep()}"

    def _new(self, options: dict[str, Any]) -> str:
        written = generate_pipeline(name=options["name"], app_label=options["app"])
        return (
            "wrote:\n"
            + "\n".join(f"  {path}" for path in written)
            + "\nRestart your pipelines workers so they load the new pipeline."
        )

    def _doctor(self, options: dict[str, Any]) -> tuple[Any, str]:
        problems = doctor.diagnose()
        data = [{"queue": p.queue, "problem": p.message, "hint": p.hint} for p in problems]
        if problems:
            raise CommandError(
                f"{len(problems)} problem(s):\n" + "\n".join(f"{p}\n  {p.hint}" for p in problems)
            )
        queues = ", ".join(doctor.pipeline_queues())
        return data, f"ok: every pipelines queue ({queues}) is served by pipelines workers"
