"""``python manage.py demo``: start a worker, trigger the demo pipeline, print what happened."""

from __future__ import annotations

import contextlib
import ctypes
import json
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from pipelines.lifecycle import CLAIMABLE_STEP_STATUSES, StepStatus, run_state
from pipelines.masking import mask, mask_text
from pipelines.models import PipelineRun, StepExecution
from pipelines.selectors import run_context_entries, run_steps, run_waiting_events
from project.demo.pipelines import PAYMENT_EVENT, FulfilOrder, PayForOrder


def _demo_login() -> str:
    """A staff superuser 'demo' with a fresh random password (printed, never stored)."""
    from django.contrib.auth import get_user_model

    password = secrets.token_urlsafe(9)
    user, _ = get_user_model().objects.get_or_create(username="demo")
    user.is_staff = user.is_superuser = user.is_active = True
    user.set_password(password)
    user.save()
    return password


SAMPLE_ORDER = {
    "customer_id": 7,
    "items": [{"sku": "A1", "price": 1250, "qty": 2}, {"sku": "B2", "price": 499, "qty": 1}],
}


# Two runs of PayForOrder: the demo approves one payment and declines the other, so the
# dashboard shows an event wait, and a failed run whose stock hold was compensated.
PAYMENTS = (
    {"approved": True, "payment_id": "pay_demo_1"},
    {"approved": False, "reason": "card expired"},
)
EVENT_DELAY = 5.0  # seconds a served demo leaves its runs waiting, so that you can see it


def _stop_with_parent() -> None:
    """In the worker before it starts (Linux): SIGTERM it when the demo process dies, also
    when nothing runs the demo's cleanup (runserver leaves with os._exit when it cannot
    bind its port; a SIGKILL)."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _trigger_payments() -> list[PipelineRun]:
    return [PayForOrder.trigger(SAMPLE_ORDER) for _ in PAYMENTS]


def _deliver_payments(runs: list[PipelineRun], *, delay: float, timeout: float) -> None:
    """Send each run its payment once it waits for it, ``delay`` seconds from now at the
    earliest."""
    started = time.monotonic()
    for run, payment in zip(runs, PAYMENTS, strict=True):
        while PAYMENT_EVENT not in run_waiting_events(run_id=run.pk):
            if run.refresh().is_finished or time.monotonic() > started + timeout:
                return
            time.sleep(0.05)
        time.sleep(max(0.0, started + delay - time.monotonic()))
        run.send_event(PAYMENT_EVENT, payment)


def _deliver_in_background(runs: list[PipelineRun], timeout: float) -> None:
    def deliver() -> None:
        try:
            _deliver_payments(runs, delay=EVENT_DELAY, timeout=timeout)
        finally:
            connection.close()  # this thread's own connection

    threading.Thread(target=deliver, name="demo-payments", daemon=True).start()


class Command(BaseCommand):
    help = (
        "Migrate, start an RQ worker, trigger the demo pipeline and serve the dashboard "
        "(with --once: print the run's context and history and exit)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Run the demo once and exit.")
        parser.add_argument("--port", type=int, default=8000, help="Dashboard port.")
        parser.add_argument("--timeout", type=float, default=60, help="Seconds to wait.")
        parser.add_argument(
            "--no-worker", action="store_true", help="Use workers you started yourself."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Stop on SIGTERM as on Ctrl-C, so the worker is stopped and the embedded Redis
        # shuts down with us (its cleanup runs at a normal exit).
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        # Before anything changes (the login, a run, a worker): a second demo would reset
        # the first one's password, trigger a stray run, then find the port taken.
        if not options["once"] and _port_in_use(options["port"]):
            raise CommandError(
                f"port {options['port']} is already in use (is the demo already running?); "
                f"stop the other server or choose another port: python manage.py demo "
                f"--port {options['port'] + 1}"
            )
        call_command("migrate", verbosity=0)
        if not options["once"]:
            self._serve(options)
            return
        with self._worker(options):
            run = FulfilOrder.trigger(SAMPLE_ORDER)
            payments = _trigger_payments()
            self.stdout.write(
                f"Triggered {run.pipeline} run {run.pk} and {PayForOrder.name} runs "
                f"{', '.join(str(p.pk) for p in payments)}; waiting for them..."
            )
            deadline = time.monotonic() + options["timeout"]
            _deliver_payments(payments, delay=0, timeout=options["timeout"])
            for each in (run, *payments):
                while not _settled(each):
                    if time.monotonic() > deadline:
                        raise CommandError(
                            f"run {each.pk} {run_state(each.status)} after "
                            f"{options['timeout']}s; is a worker running "
                            f"(python manage.py pipelines worker)?"
                        )
                    time.sleep(0.1)
        self._report(run)
        for payment in payments:
            self._report_payment(payment)

    def _serve(self, options: dict[str, Any]) -> None:
        password = _demo_login()
        with self._worker(options):
            run = FulfilOrder.trigger(SAMPLE_ORDER)
            paid, declined = _trigger_payments()
            _deliver_in_background([paid, declined], timeout=options["timeout"])
            base = f"http://127.0.0.1:{options['port']}"
            self.stdout.write(
                self.style.SUCCESS("\nThe demo is running.\n")
                + "".join(
                    f"  {label + ':':<14}{text}\n"
                    for label, text in (
                        ("Dashboard", f"{base}/pipelines/"),
                        ("A run", f"{base}/pipelines/runs/{run.pk}/"),
                        (
                            "Event wait",
                            f"{base}/pipelines/runs/{paid.pk}/  (the payment event arrives "
                            f"after {EVENT_DELAY:.0f}s)",
                        ),
                        (
                            "Compensation",
                            f"{base}/pipelines/runs/{declined.pk}/  (payment declined, the "
                            f"stock hold released)",
                        ),
                        ("Order form", f"{base}/demo/  (triggers a run from a view)"),
                        ("Admin", f"{base}/admin/"),
                        ("Log in as", f"demo / {password}"),
                    )
                )
                + "Stop with Ctrl-C.\n"
            )
            call_command(
                "runserver", f"127.0.0.1:{options['port']}", use_reloader=False, verbosity=0
            )

    @contextlib.contextmanager
    def _worker(self, options: dict[str, Any]) -> Iterator[None]:
        """A worker for the block's duration (unless --no-worker)."""
        if options["no_worker"]:
            yield
            return
        self.stdout.write("Starting a worker: python manage.py pipelines worker")
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "pipelines", "-v0", "worker"],
            cwd=settings.BASE_DIR,
            preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
        )
        try:
            yield
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)

    def _report_payment(self, run: Any) -> None:
        steps = ", ".join(f"{s.node} {s.kind} {s.status}" for s in run_steps(run_id=run.pk))
        error = f"; {mask_text(run.error)}" if run.error else ""
        self.stdout.write(f"\nRun {run.pk} ({run.pipeline}): {run.status}{error}")
        self.stdout.write(f"  steps: {steps}")
        context = {e.key: e.value for e in run_context_entries(run_id=run.pk)}
        self.stdout.write(f"  context: {json.dumps(context)}")

    def _report(self, run: Any) -> None:
        style = self.style.SUCCESS if run.status == "succeeded" else self.style.ERROR
        duration = (run.finished_at - run.created_at).total_seconds()
        self.stdout.write(style(f"\nRun {run.pk}: {run.status} in {duration:.2f}s"))
        if run.error:
            self.stdout.write(f"Error: {mask_text(run.error)}")
        self.stdout.write(f"Output: {json.dumps(mask(run.output))}\n")
        self.stdout.write("Context (key = value, written by):")
        for entry in run_context_entries(run_id=run.pk):
            self.stdout.write(f"  {entry.key} = {json.dumps(entry.value)}  [{entry.writer}]")
        self.stdout.write("\nStep history:")
        for step in run_steps(run_id=run.pk):
            took = (
                f"{(step.finished_at - step.started_at).total_seconds() * 1000:.0f} ms"
                if step.finished_at and step.started_at
                else "-"
            )
            route = f" route={step.route}" if step.route else ""
            self.stdout.write(
                f"  #{step.pk:<4} {step.node:<20} {step.status:<10} attempts={step.attempt} "
                f"{took:>7}{route}  payload={json.dumps(mask(step.payload))[:60]}"
            )


def _settled(run: PipelineRun) -> bool:
    """Whether the run has finished and nothing of it is still to run: a failed run's
    compensations run after it failed."""
    return run.refresh().is_finished and not (
        StepExecution.objects.filter(
            run=run, status__in=[*CLAIMABLE_STEP_STATUSES, StepStatus.RUNNING]
        ).exists()
    )
