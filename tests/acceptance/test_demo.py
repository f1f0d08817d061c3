"""The README's first command, as a newcomer runs it: no configuration at all (SQLite and
the embedded Redis under a fresh var/ directory), a real worker subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from tests.helpers.procs import ROOT


def demo_env(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "PIPELINES_TEST_DB_NAME")
    }
    env.update(DJANGO_SETTINGS_MODULE="project.settings", PIPELINES_VAR_DIR=str(tmp_path / "var"))
    return env


def test_demo_command_runs_the_pipeline_on_the_embedded_defaults(tmp_path):
    env = demo_env(tmp_path)

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
    # The event wait and the compensation: one payment approved, one declined.
    assert "Run 2 (PayForOrder): succeeded" in out
    assert '"payment_id": "pay_demo_1"' in out
    assert (
        "Run 3 (PayForOrder): failed; step CapturePayment.2 failed after 1 attempt: "
        "ValueError: payment declined: card expired"
    ) in out
    assert "AwaitPayment.1 step succeeded" in out
    assert "HoldStock.0 compensation succeeded" in out
    assert '"hold_released": "hold-7-3"' in out


def test_a_second_demo_on_a_busy_port_fails_before_changing_anything(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "manage.py", "demo", "--port", str(port)],
            cwd=ROOT,
            env=demo_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert done.returncode == 1, done.stdout + done.stderr
    assert f"port {port} is already in use (is the demo already running?)" in done.stderr
    # Nothing happened: no migration (so no login reset and no run), no worker started.
    assert done.stdout == ""
    assert not (tmp_path / "var" / "db.sqlite3").exists()
