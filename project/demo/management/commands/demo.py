"""``python manage.py demo``: start a worker, trigger the demo pipeline, print what happened."""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pipelines.masking import mask, mask_text
from pipelines.selectors import run_context_entries, run_steps
from project.demo.pipelines import FulfilOrder


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
        call_command("migrate", verbosity=0)
        if not options["once"]:
            self._serve(options)
            return
        with self._worker(options):
            run = FulfilOrder.trigger(SAMPLE_ORDER)
            self.stdout.write(f"Triggered {run.pipeline} run {run.pk}; waiting for it...")
            deadline = time.monotonic() + options["timeout"]
            while not run.refresh().is_finished:
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"run {run.pk} is still {run.status} after {options['timeout']}s; "
                        f"is a worker running (python manage.py pipelines worker)?"
                    )
                time.sleep(0.1)
        self._report(run)

    def _serve(self, options: dict[str, Any]) -> None:
        password = _demo_login()
        with self._worker(options):
            run = FulfilOrder.trigger(SAMPLE_ORDER)
            base = f"http://127.0.0.1:{options['port']}"
            self.stdout.write(
                self.style.SUCCESS("\nThe demo is running.\n")
                + f"  Dashboard:  {base}/pipelines/\n"
                + f"  A run:      {base}/pipelines/runs/{run.pk}/\n"
                + f"  Order form: {base}/demo/  (triggers a run from a view)\n"
                + f"  Admin:      {base}/admin/\n"
                + f"  Log in as:  demo / {password}\n"
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
        )
        try:
            yield
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)

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
