"""The demo project's settings in production (DEBUG=false): no start without a real
SECRET_KEY, `check --deploy` clean with the README's variables, and no demo order form."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from tests.helpers.procs import ROOT

# The README's Production section, as an operator would set it.
PRODUCTION = {
    "DEBUG": "false",
    "ALLOWED_HOSTS": "pipelines.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
}
HTTPS_WARNINGS = {
    "SECURE_HSTS_SECONDS": "security.W004",
    "SECURE_SSL_REDIRECT": "security.W008",
    "SESSION_COOKIE_SECURE": "security.W012",
    "CSRF_COOKIE_SECURE": "security.W016",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "security.W005",
    "SECURE_HSTS_PRELOAD": "security.W021",
}


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``manage.py`` with the project's own settings and only the given configuration."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "PIPELINES_", "SECURE_", "SESSION_", "CSRF_"))
        and k not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DEMO", "DATABASE_URL")
    }
    base.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        PIPELINES_VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
        **env,
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def real_key() -> str:
    return secrets.token_urlsafe(50)


def test_check_deploy_is_clean_with_the_documented_variables(tmp_path):
    done = manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        **PRODUCTION,
        SECRET_KEY=real_key(),
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


@pytest.mark.parametrize("variable", HTTPS_WARNINGS)
def test_each_https_variable_clears_its_warning(tmp_path, variable):
    env = {k: v for k, v in PRODUCTION.items() if k != variable}
    done = manage(tmp_path, "check", "--deploy", **env, SECRET_KEY=real_key())

    assert HTTPS_WARNINGS[variable] in done.stderr + done.stdout


@pytest.mark.parametrize(
    "key",
    [
        None,
        "insecure-demo-key-set-SECRET_KEY-in-production",
        "short-key",
        "django-insecure-" + "x" * 50,
    ],
    ids=["missing", "the demo's public key", "too short", "django-insecure"],
)
def test_production_refuses_to_start_without_a_real_secret_key(tmp_path, key):
    env = {**PRODUCTION, **({"SECRET_KEY": key} if key else {})}
    done = manage(tmp_path, "check", **env)

    assert done.returncode != 0
    assert "SECRET_KEY is not set to a real key of 50 or more random characters" in done.stderr


def test_the_demo_form_exists_only_with_the_demo_settings(tmp_path):
    probe = (
        "from django.urls import NoReverseMatch, reverse\n"
        "try:\n    print(reverse('demo:order'))\nexcept NoReverseMatch:\n    print('no demo')"
    )
    production = manage(tmp_path, "shell", "-v0", "-c", probe, **PRODUCTION, SECRET_KEY=real_key())
    assert production.stdout.strip() == "no demo", production.stderr
    demo = manage(tmp_path, "shell", "-v0", "-c", probe)  # no configuration at all: the demo
    assert demo.stdout.strip() == "/demo/", demo.stderr
    opted_in = manage(
        tmp_path, "shell", "-v0", "-c", probe, **PRODUCTION, SECRET_KEY=real_key(), DEMO="true"
    )
    assert opted_in.stdout.strip() == "/demo/", opted_in.stderr


@pytest.mark.django_db
def test_the_demo_form_needs_the_permission_to_start_runs():
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get("/demo/").status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="add_pipelinerun"))
    client.force_login(User.objects.get(pk=staff.pk))
    assert client.get("/demo/").status_code == 200
