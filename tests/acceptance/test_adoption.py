"""The proof that a Django developer can adopt the app: the wheel, a fresh
``django-admin startproject`` in a fresh virtualenv, the README's install section followed
as written (read from the README, so the two cannot drift), a pipeline and an ordinary
django-rq job, the documented workers as real processes, triggers from a sync and an
async view over HTTP, the dashboard and the admin, ``check --deploy``, and the generated
test under ``manage.py test`` and pytest."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.helpers.procs import ROOT

pytestmark = [pytest.mark.workers, pytest.mark.timeout(900)]

README = ROOT / "README.md"
REDIS_IN_README = "redis://localhost:6379/0"

SHOP_JOBS = '''import datetime
from pathlib import Path


def note_order(path: str, day: datetime.date) -> None:
    """An ordinary job of the project: a date argument needs the pickle serializer."""
    Path(path).write_text(day.isoformat())
'''

SHOP_VIEWS = """import datetime

import django_rq
from django.http import HttpRequest, JsonResponse

from shop.jobs import note_order
from shop.pipelines import Greeting


def sync_trigger(request: HttpRequest) -> JsonResponse:
    run = Greeting.trigger({"via": "sync"})
    django_rq.get_queue("default").enqueue(
        note_order, request.GET["path"], datetime.date(2026, 12, 2)
    )
    return JsonResponse({"run": run.pk})


async def async_trigger(request: HttpRequest) -> JsonResponse:
    run = await Greeting.atrigger({"via": "async"})
    await run.arefresh()
    return JsonResponse({"run": run.pk, "status": run.status})
"""

SHOP_URLS = """from django.urls import path

from shop import views

urlpatterns = [
    path("sync/", views.sync_trigger),
    path("async/", views.async_trigger),
]
"""

RENDER_PAGES = """
from django.contrib.auth.models import User
from django.test import Client
from django.test.utils import setup_test_environment

setup_test_environment()
admin = User.objects.create_superuser("boss", "boss@example.com", "pw")
client = Client()
client.force_login(admin)
for url in URLS:
    response = client.get(url)
    print(url, response.status_code)
"""


def install_section() -> str:
    text = README.read_text()
    start = text.index("## Add it to your project")
    return text[start : text.index("\n## ", start + 1)]


def blocks(section: str) -> list[tuple[str, str]]:
    return re.findall(r"```(bash|python)\n(.*?)```", section, flags=re.S)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> dict:
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - checked above
        return json.loads(response.read())


def check_ids(output: str) -> set[str]:
    return set(re.findall(r"\((\w+\.[EW]\d+)\)", output))


class Project:
    def __init__(self, tmp: Path, redis_url: str) -> None:
        self.tmp = tmp
        self.venv = tmp / "venv"
        self.dir = tmp / "proj"
        self.python = str(self.venv / "bin" / "python")
        self.redis_url = redis_url
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "DATABASE_URL", "REDIS_URL")
            and not k.startswith("PIPELINES_")
        }

    def run(self, *args: str, ok: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        done = subprocess.run(
            args,
            cwd=self.dir if self.dir.exists() else self.tmp,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if ok:
            assert done.returncode == 0, f"{args}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    def manage(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        return self.run(self.python, "manage.py", *args, ok=ok)

    def start(self, name: str, *args: str) -> Path:
        log = self.tmp / f"{name}.log"
        self.procs.append(
            subprocess.Popen(
                args,
                cwd=self.dir,
                env=self.env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        return log

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def append(self, relative: str, text: str) -> None:
        path = self.dir / relative
        path.write_text(path.read_text() + "\n" + text)


def test_a_fresh_project_follows_the_readme_and_runs_pipelines_beside_its_own_jobs(
    tmp_path, redis_conn
):
    from django.conf import settings

    redis_conn.flushdb()
    section = install_section()
    code = blocks(section)
    commands = [line.strip() for kind, text in code if kind == "bash" for line in text.splitlines()]
    assert commands == [
        "pip install django-durable-pipelines",
        "python manage.py migrate",
        "python manage.py pipelines worker",
    ], "the README's install commands changed: update this test with them"

    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("django_durable_pipelines-*.whl")
    names = subprocess.run(
        [sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True
    ).stdout
    assert "project/" not in names
    assert "tests/" not in names
    assert "pipelines/py.typed" in names

    project = Project(tmp_path, settings.REDIS_URL)
    subprocess.run([sys.executable, "-m", "venv", str(project.venv)], check=True, timeout=300)
    # The README's pip command, with the wheel built from this checkout for the name; pytest
    # to run the generated test under it too.
    project.run(project.python, "-m", "pip", "install", "-q", str(wheel), "pytest-django")
    project.dir.mkdir()
    project.run(str(project.venv / "bin" / "django-admin"), "startproject", "mysite", ".")
    baseline = check_ids(project.manage("check", "--deploy", ok=False).stderr)
    project.manage("startapp", "shop")

    # The project's own django-rq queue, there before the app (RQ's default pickle).
    project.append(
        "mysite/settings.py", f'RQ_QUEUES = {{"default": {{"URL": "{project.redis_url}"}}}}'
    )
    for kind, text in code:
        target = text.splitlines()[0]
        if kind == "python" and target.startswith("# settings.py"):
            project.append("mysite/settings.py", text.replace(REDIS_IN_README, project.redis_url))
        elif kind == "python" and target.startswith("# urls.py"):
            project.append("mysite/urls.py", text)
    project.append("mysite/settings.py", 'INSTALLED_APPS += ["shop"]')

    new = project.manage("pipelines", "new", "Greeting", "--app", "shop")
    assert "Restart your pipelines workers" in new.stdout
    (project.dir / "shop" / "jobs.py").write_text(SHOP_JOBS)
    (project.dir / "shop" / "views.py").write_text(SHOP_VIEWS)
    (project.dir / "shop" / "urls.py").write_text(SHOP_URLS)
    project.append("mysite/urls.py", 'urlpatterns += [path("shop/", include("shop.urls"))]')

    project.manage("migrate")  # the README's command, after the app's own setup
    worker_log = project.start(
        "pipelines-worker", project.python, "manage.py", "pipelines", "worker"
    )
    rq_log = project.start("rqworker", project.python, "manage.py", "rqworker", "default")
    port = free_port()
    server_log = project.start(
        "runserver", project.python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"
    )
    try:

        def up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
            return True

        wait_for(up, 60, f"runserver:\n{server_log.read_text()}")
        marker = tmp_path / "ordinary-job"
        base = f"http://127.0.0.1:{port}/shop"
        sync_run = get_json(f"{base}/sync/?path={marker}")["run"]
        async_run = get_json(f"{base}/async/")
        assert async_run["status"] == "pending"

        def status(run_id: int) -> str:
            shown = project.manage("pipelines", "show", str(run_id), "--json")
            return json.loads(shown.stdout)["status"]

        for run_id in (sync_run, async_run["run"]):
            wait_for(
                lambda run_id=run_id: status(run_id) not in ("pending", "running"),
                90,
                f"run {run_id}:\n{worker_log.read_text()[-3000:]}",
            )
            assert status(run_id) == "succeeded", worker_log.read_text()[-3000:]
        wait_for(marker.exists, 30, f"the ordinary job:\n{rq_log.read_text()[-3000:]}")
        assert marker.read_text() == "2026-12-02"
        assert project.manage("pipelines", "doctor").returncode == 0

        urls = [
            "/pipelines/",
            f"/pipelines/runs/{sync_run}/",
            "/admin/",
            "/admin/pipelines/pipelinerun/",
            f"/admin/pipelines/pipelinerun/{sync_run}/change/",
        ]
        pages = project.manage("shell", "-c", f"URLS = {urls!r}\n{RENDER_PAGES}")
        shown = [line.split() for line in pages.stdout.splitlines() if line.startswith("/")]
        assert shown == [[url, "200"] for url in urls]
    finally:
        project.stop()

    assert check_ids(project.manage("check", "--deploy", ok=False).stderr) - baseline == set()

    tests = project.manage("test", "shop")
    assert "Ran 1 test" in tests.stderr
    assert "OK" in tests.stderr
    under_pytest = project.run(
        project.python,
        "-m",
        "pytest",
        "-q",
        "--ds=mysite.settings",
        "-p",
        "no:cacheprovider",
        "shop/tests.py",
    )
    assert "1 passed" in under_pytest.stdout
