"""The ``pipelines`` command's help: what each subcommand does, and examples to copy."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

PROG = "python manage.py pipelines"
WIDTH = 78  # help is printed as written (for the examples), so prose is wrapped here


@dataclass(frozen=True)
class Help:
    summary: str  # one line, in the list of subcommands
    description: str
    examples: tuple[str, ...]

    def wrapped(self) -> str:
        return textwrap.fill(self.description, WIDTH)

    def epilog(self) -> str:
        return "examples:\n" + "\n".join(f"  {PROG} {example}" for example in self.examples)


EXIT_STATUS = (
    "Exit status: 0 on success; 1 on an error (unknown pipeline or run, bad JSON, a refused "
    "action, a run that failed under --wait); 2 on a usage error; 3 when --wait gives up."
)

OVERVIEW_PROSE = (
    "See and steer pipelines from a shell. Readable tables by default, --json for scripts; "
    "errors go to stderr. Secrets are masked and control characters escaped in everything "
    "printed. Run `pipelines SUBCOMMAND --help` for a subcommand's examples."
)
OVERVIEW = textwrap.fill(OVERVIEW_PROSE, WIDTH) + "\n\n" + textwrap.fill(EXIT_STATUS, WIDTH)

HELP: dict[str, Help] = {
    "list": Help(
        "The registered pipelines.",
        "The pipelines every installed app registered: name, step count, module, halt handler.",
        ("list", "list --json"),
    ),
    "graph": Help(
        "A text picture of a pipeline's graph.",
        "Each node of the pipeline's graph and what follows it (chain, divide/combine, "
        "expand/collapse, divert/converge, waits, compensations, the halt handler).",
        ("graph FulfilOrder", "graph FulfilOrder --json"),
    ),
    "trigger": Help(
        "Start a run; print its dashboard URL.",
        "Start a run of pipeline NAME with a JSON input and print its id, status and "
        "dashboard URL (absolute with --base-url or the PIPELINES_DASHBOARD_URL setting, "
        "else the path). With --wait, follow the run until it finishes: exit 0 if it "
        "succeeded, 1 if it failed or was cancelled, 3 if --timeout passed first. The same "
        "--idempotency-key and input return the existing run; the same key with another "
        "input is refused.",
        (
            """trigger FulfilOrder --input '{"customer_id": 7}'""",
            'trigger FulfilOrder --input "$(cat order.json)" --idempotency-key order-7',
            "trigger FulfilOrder --wait --timeout 120 --json",
        ),
    ),
    "runs": Help(
        "Recent runs, newest first.",
        "Runs, newest first, with their progress and the error they failed with.",
        ("runs", "runs --status failed --pipeline FulfilOrder --limit 50", "runs --json"),
    ),
    "show": Help(
        "A run: status, URL, timings, input, output, steps, context.",
        "Everything about run RUN: status, dashboard URL, timings, input and output, each "
        "step execution (attempts, time taken, error) and each context key with its writer.",
        ("show 42", "show 42 --json"),
    ),
    "cancel": Help(
        "Cancel a run (its compensations run).",
        "Cancel an active run: nothing new starts, queued and waiting steps are cancelled, "
        "running steps are stopped, completed steps' compensations run.",
        ("cancel 42", "cancel 42 --reason 'customer called'"),
    ),
    "retry": Help(
        "Retry a failed run from its failed steps (alias: resume).",
        "Resume failed run RUN: its failed steps get a new attempt; completed steps and the "
        "context are kept. `resume` is another name for this subcommand.",
        ("retry 42", "resume 42 --json"),
    ),
    "rerun": Help(
        "Start a new run with the same input.",
        "Start a new run of RUN's pipeline with RUN's input (RUN is left as it is).",
        ("rerun 42",),
    ),
    "send-event": Help(
        "Deliver an event to a waiting run.",
        "Deliver event NAME to the step of run RUN that waits for it (WaitForEvent); the "
        "next step gets the JSON payload.",
        ("""send-event 42 payment-confirmed --payload '{"amount": 1250}'""",),
    ),
    "recover": Help(
        "One sweeper pass: reclaim, re-enqueue, expire waits.",
        "Run one recovery pass now (workers run one every PIPELINES_SWEEP_INTERVAL): reclaim "
        "steps whose worker died, re-enqueue steps whose job was lost, expire event waits.",
        ("recover", "recover --json"),
    ),
    "new": Help(
        "Write a pipeline module skeleton and a test for it.",
        "Add pipeline class NAME to APP's pipelines.py and a test for it to APP's tests.",
        ("new ImportInvoices --app shop",),
    ),
    "worker": Help(
        "Run a pipelines worker (engine jobs, JSON).",
        "Serve the pipelines queues with the engine's worker (JSON serializer, engine jobs "
        "only, a sweeper thread). Stop it with Ctrl-C or SIGTERM.",
        ("worker", "worker pipelines other --simple", "worker --burst"),
    ),
    "doctor": Help(
        "Is every pipelines queue served by a pipelines worker?",
        "Check that each queue a registered step uses has a pipelines worker; exit 1 with "
        "the fix when one has none or only plain rqworkers.",
        ("doctor", "doctor --json"),
    ),
}
