"""``manage.py pipelines worker``: rqworker's useful options, with the engine's classes."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from rq.logutils import setup_loghandlers

from pipelines.checks import check_sqlite
from pipelines.engine.doctor import pipeline_queues
from pipelines.engine.worker import start_worker


def add_worker_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "queues",
        nargs="*",
        help="Queues to serve (default: every queue a registered step uses).",
    )
    parser.add_argument(
        "--simple", action="store_true", help="Run steps in the worker process (no fork)."
    )
    parser.add_argument("--burst", action="store_true", help="Stop when the queues are empty.")
    parser.add_argument(
        "--without-scheduler",
        action="store_true",
        help="Do not move delayed jobs (retries) to their queues in this worker.",
    )
    parser.add_argument("--name", default=None, help="The worker's name in RQ.")
    parser.add_argument("--pid", default=None, help="Write the worker's pid to this file.")
    parser.add_argument("--worker-ttl", type=int, default=420)
    parser.add_argument("--max-jobs", type=int, default=None)
    parser.add_argument("--max-idle-time", type=int, default=None)


def run_worker(options: dict[str, Any], *, verbosity: int) -> str:
    problems = check_sqlite(settings.DATABASES.get("default", {}))
    if problems:
        raise CommandError(f"{problems[0].msg}\n{problems[0].hint}")
    queues = options["queues"] or pipeline_queues()
    unknown = [q for q in queues if q not in getattr(settings, "RQ_QUEUES", {})]
    if unknown or not queues:
        raise CommandError(
            f"queues {unknown or queues} are not in RQ_QUEUES; add them, e.g. "
            f'RQ_QUEUES = {{"pipelines": {{"URL": "redis://localhost:6379/0"}}}}'
        )
    if options["pid"]:
        with open(os.path.expanduser(options["pid"]), "w") as pid_file:
            pid_file.write(str(os.getpid()))
    level = "DEBUG" if verbosity >= 2 else "WARNING" if verbosity == 0 else "INFO"
    setup_loghandlers(level)
    start_worker(
        queues,
        simple=options["simple"],
        burst=options["burst"],
        with_scheduler=not options["without_scheduler"],
        name=options["name"],
        worker_ttl=options["worker_ttl"],
        max_jobs=options["max_jobs"],
        max_idle_time=options["max_idle_time"],
        logging_level=level,
    )
    return "worker stopped"
