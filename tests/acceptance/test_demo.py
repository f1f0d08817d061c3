"""The README's first command, as a newcomer runs it: no configuration at all (SQLite and
the embedded Redis under a fresh var/ directory), a real worker subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers.procs import ROOT


def test_demo_command_runs_the_pipeline_on_the_embedded_defaults(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "PIPELINES_TEST_DB_NAME")
    }
    env.update(DJANGO_SETTINGS_MODULE="project.settings", PIPELINES_VAR_DIR=str(tmp_path / "var"))

    done = subprocess.run(
        [sys.executable, "manage.py", "demo", "--once", "--timeout", "90"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Run 1: succeeded" in out
    # Keys in jsonb's order on every database (here SQLite): shorter keys first.
    assert 'Output: {"carrier": "express", "parcels": 2, "customer_id": 7}' in out
    assert "order_total = 2999  [step ValidateOrder.0 (execution 1) attempt 1 at" in out
    assert 'parcels = ["parcel-a1", "parcel-b2"]' in out
    assert "ChooseCarrier.5      succeeded" in out
    assert "route=express" in out
    assert out.count("PackParcel.4") == 2
    assert (tmp_path / "var" / "db.sqlite3").exists()
    # The embedded Redis ran there and was shut down (it saves its dump on shutdown).
    assert (tmp_path / "var" / "redis.db").exists()
