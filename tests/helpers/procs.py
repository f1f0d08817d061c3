"""Processes the tests start: their environment, and running several at once."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of a process that must work on this test session's database (the
    one pytest-django made) with the tests' settings."""
    from django.db import connection

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PIPELINES_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def spawn_json(
    commands: list[list[str]], env: dict[str, str], timeout: float = 120
) -> list[dict[str, Any]]:
    """Start every command at once (from the project's root), wait for them all, and
    return what each printed as JSON. One that fails fails the caller with its stderr."""
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for cmd in commands
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err.decode()
        results.append(json.loads(out))
    return results
