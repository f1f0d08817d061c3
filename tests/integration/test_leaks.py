"""The leak probe: credentials planted in every shape, read back from every surface.

Each secret shape carries a marker starting with ``LEAK``; no surface may show one. Each
harmless key that naive scrubbers hide carries a marker starting with ``SEEN``; every surface
that shows values must show it.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from pipelines.models import ContextWrite, PipelineRun, StepExecution
from tests.helpers.inprocess import drive
from tests.testapp.leak_pipelines import ExplodingPipeline, LeakPipeline

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.portable]

# shape -> (input key, value); the marker is the LEAK... part.
SECRET_INPUT = {
    "password key, Stripe prefix": ("password", "sk_live_LEAKinputpw"),
    "pwd key": ("pwd", "LEAKpwd"),
    "auth key": ("auth", "LEAKauth"),
    "stripe_key key": ("stripe_key", "LEAKstripe"),
    "jwt key": ("jwt", "LEAKjwtkey"),
    "cvv key": ("cvv", "LEAKcvv"),
    "card_number key": ("card_number", "LEAKcard"),
    "api_token key": ("api_token", "LEAKapitoken"),
    "camelCase apiKey": ("apiKey", "LEAKcamel"),
    "header list": (
        "headers",
        [
            ["Authorization", "Bearer LEAKbearerhdr"],
            ["X-Api-Key", "LEAKxapikey"],
            ["Accept", "application/json"],
        ],
    ),
    "name/value header": ("har", [{"name": "Cookie", "value": "theme=dark; LEAKcookie"}]),
    "URL password": ("database", "postgres://app:LEAKurlpw@db.example.com/app"),
    "bearer in text": ("note", "sent with Bearer LEAKbearer.text-123"),
    "GitHub prefix": ("vendor", "ghp_LEAKghp0123456789abcdefghij"),
    "AWS key id": ("aws", "AKIALEAKAWS123456789"),
    "query parameter": ("callback", "https://api.example.com/v1?api_key=LEAKquery&page=2"),
    "JWT in text": ("blob", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.LEAKjwtsig"),
    "nested secret key": ("profile", {"name": "Ada", "secret": "LEAKnested"}),
}
HARMLESS_INPUT = {
    key: f"SEEN-{key}"
    for key in (
        "footprint",
        "hotplate",
        "compass",
        "passenger",
        "spin",
        "token_count",
        "max_tokens",
        "author",
        "sort_key",
        "public_key",
    )
}
EVENT_PAYLOAD = {
    "password": "LEAKevent",
    "link": "redis://:LEAKredis@cache:6379/0",
    "compass": "SEEN-event-compass",
}
ERROR_MESSAGE = (
    "password sk_live_LEAKexc for postgres://u:LEAKexcurl@db failed; token=LEAKexctok, "
    "Authorization: Bearer LEAKexcbearer (SEEN-error)"
)


def _markers(value: object) -> list[str]:
    text = json.dumps(value)
    return [word.strip('",') for word in text.replace(":", " ").split() if "LEAK" in word]


def _command(*args: str) -> str:
    out = io.StringIO()
    call_command("pipelines", *args, stdout=out)
    return out.getvalue()


def _probe(caplog):
    caplog.set_level(logging.INFO, logger="pipelines")
    leaky = drive(
        LeakPipeline.trigger(
            {**{k: v for k, v in SECRET_INPUT.values()}, **HARMLESS_INPUT},
            idempotency_key="order-SEEN-key",
        )
    )
    assert leaky.status == "waiting", leaky.error
    leaky.send_event("secrets", EVENT_PAYLOAD)
    leaky = drive(leaky)
    assert leaky.status == "succeeded", leaky.error
    exploded = drive(ExplodingPipeline.trigger({"message": ERROR_MESSAGE}))
    assert exploded.status == "failed"
    assert "LEAKexc" in exploded.error  # stored as raised: masking is for display
    return leaky, exploded, caplog


def _surfaces(leaky: PipelineRun, exploded: PipelineRun, caplog) -> dict[str, tuple[str, str]]:
    """surface -> (what it shows: "values" or "errors", its text)."""
    viewer = User.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_pipelinerun"))
    web = Client()
    web.force_login(viewer)
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "", "pw"))

    def get(client: Client, url: str) -> str:
        response = client.get(url)
        assert response.status_code == 200, url
        return response.content.decode()

    echo = StepExecution.objects.get(run=leaky, step="Echo")
    surfaces = {
        "run page": ("values", get(web, reverse("pipelines:run", args=[leaky.pk]))),
        "run page, context after a step": (
            "values",
            get(web, reverse("pipelines:run", args=[leaky.pk]) + f"?after={echo.pk}"),
        ),
        "run page live fragment": (
            "values",
            get(web, reverse("pipelines:run-live", args=[leaky.pk])),
        ),
        "context fragment": ("values", get(web, reverse("pipelines:run-context", args=[leaky.pk]))),
        "runs list": ("list", get(web, reverse("pipelines:runs"))),
        "failed run page": ("errors", get(web, reverse("pipelines:run", args=[exploded.pk]))),
        "overview": ("errors", get(web, reverse("pipelines:overview"))),
        "admin run": (
            "values",
            get(admin, reverse("admin:pipelines_pipelinerun_change", args=[leaky.pk])),
        ),
        "admin failed run": (
            "errors",
            get(admin, reverse("admin:pipelines_pipelinerun_change", args=[exploded.pk])),
        ),
        "admin context history": (
            "values",
            get(admin, reverse("admin:pipelines_contextwrite_changelist") + "?all="),
        ),
        "admin context write": (
            "value",
            get(
                admin,
                reverse(
                    "admin:pipelines_contextwrite_change",
                    args=[ContextWrite.objects.get(run=leaky, key="password").pk],
                ),
            ),
        ),
        "command show": ("values", _command("show", str(leaky.pk))),
        "command show --json": ("values", _command("show", str(leaky.pk), "--json")),
        "command show, failed run": ("errors", _command("show", str(exploded.pk))),
        "command show --json, failed run": (
            "errors",
            _command("show", str(exploded.pk), "--json"),
        ),
        "command runs": ("truncated errors", _command("runs")),
        "command runs --json": ("errors", _command("runs", "--json")),
        "logs": ("logs", caplog.text),
    }
    for step in StepExecution.objects.filter(run__in=[leaky, exploded]):
        kind = "errors" if step.run_id == exploded.pk else "step"
        surfaces[f"admin step {step.step}"] = (
            kind,
            get(admin, reverse("admin:pipelines_stepexecution_change", args=[step.pk])),
        )
    return surfaces


SEEN_ON = {
    # what a surface shows -> the harmless markers it must show
    "values": [*HARMLESS_INPUT.values()],
    "errors": ["SEEN-error"],
    "list": ["order-SEEN-key"],
    "step": [],
    "truncated errors": [],
    "value": [],
    "logs": ["SEEN-footprint", "SEEN-event-compass"],
}


def test_no_secret_shape_shows_on_any_surface_and_no_harmless_key_is_hidden(redis_conn, caplog):
    leaky, exploded, caplog = _probe(caplog)
    markers = {
        **{shape: _markers(value) for shape, (_, value) in SECRET_INPUT.items()},
        "event payload": _markers(EVENT_PAYLOAD),
        "error message": _markers(ERROR_MESSAGE),
    }
    assert all(markers.values())

    leaks: dict[str, list[str]] = {}
    hidden: dict[str, list[str]] = {}
    surfaces = _surfaces(leaky, exploded, caplog)
    for surface, (shows, text) in surfaces.items():
        found = [shape for shape, marks in markers.items() if any(m in text for m in marks)]
        if found or "LEAK" in text:
            at = text.index("LEAK")
            leaks[surface] = found or [f"(unlisted: ...{text[at - 60 : at + 20]}...)"]
        missing = [seen for seen in SEEN_ON[shows] if seen not in text]
        if missing:
            hidden[surface] = missing

    assert leaks == {}
    assert hidden == {}
    # The probe really reached each kind of surface.
    assert {shows for shows, _ in surfaces.values()} == set(SEEN_ON)
    assert "••••••" in surfaces["run page"][1]
    assert "postgres://app:••••••@db.example.com/app" in surfaces["command show"][1]
    assert "Bearer ••••••" in surfaces["failed run page"][1]
