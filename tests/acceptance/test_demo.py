"""The README's first command, as a newcomer runs it: no configuration at all (SQLite and
the embedded Redis under a fresh var/ directory), a real worker subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

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
    # (Django 6 may open the database, and so create an empty SQLite file, at start-up.)
    assert done.stdout == ""
    database = tmp_path / "var" / "db.sqlite3"
    if database.exists():
        with contextlib.closing(sqlite3.connect(database)) as db:
            assert db.execute("SELECT name FROM sqlite_master").fetchall() == []


def _children(pid: int) -> set[int]:
    """The live descendants of ``pid`` (Linux's /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found |= {int(child), *_children(int(child))}
    return found


def test_the_served_demo_delivers_the_event_compensates_and_stops_its_worker(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = demo_env(tmp_path)
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("Stop with Ctrl-C"):
                break
        banner = "".join(lines)
        assert f"Event wait:   http://127.0.0.1:{port}/pipelines/runs/2/" in banner
        assert (
            f"Compensation: http://127.0.0.1:{port}/pipelines/runs/3/  (payment declined, "
            "the stock hold released)"
        ) in banner

        def show(run_id: int) -> dict:
            done = subprocess.run(
                [sys.executable, "manage.py", "pipelines", "show", str(run_id), "--json"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            return json.loads(done.stdout)

        deadline = time.monotonic() + 90
        while show(3)["status"] != "failed" or show(2)["status"] != "succeeded":
            assert time.monotonic() < deadline, (show(2), show(3))
            time.sleep(1)
        paid, declined = show(2), show(3)
        assert [s["node"] for s in paid["steps"]] == [
            "HoldStock.0",
            "AwaitPayment.1",
            "CapturePayment.2",
        ]
        assert paid["context"]["payment_id"]["value"] == "pay_demo_1"
        assert [(s["node"], s["kind"]) for s in declined["steps"]][-1] == (
            "HoldStock.0",
            "compensation",
        )
        assert (
            declined["context"]["hold_released"]["value"] == declined["context"]["hold_id"]["value"]
        )
        spawned = _children(demo.pid)
        assert spawned  # the worker (and its children)
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=60)

    assert demo.returncode == 0
    # SIGTERM stopped the worker with the demo: nothing it started is left.
    assert not [pid for pid in spawned if Path(f"/proc/{pid}").exists()]


def test_the_worker_does_not_outlive_a_killed_demo(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    # The tests' Redis, not the embedded one: a killed demo cannot shut that down.
    env = {**demo_env(tmp_path), "REDIS_URL": os.environ["REDIS_URL"]}
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    for line in demo.stdout:
        if line.startswith("Stop with Ctrl-C"):
            break
    spawned = _children(demo.pid)
    assert spawned
    # As when runserver leaves with os._exit: none of the demo's cleanup runs.
    demo.kill()
    demo.wait(timeout=30)

    deadline = time.monotonic() + 60
    while [pid for pid in spawned if _alive(pid)]:
        assert time.monotonic() < deadline, [pid for pid in spawned if _alive(pid)]
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its (gone) parent to collect it."""
    try:
        return (Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]) != "Z"
    except OSError:
        return False
