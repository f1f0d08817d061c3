"""The demo project logs a server error (a 500) with its traceback on the console."""

from __future__ import annotations

import io
import logging

import pytest
from django.test import Client, override_settings
from django.urls import path


def broken(request):
    raise RuntimeError("the view broke")


urlpatterns = [path("broken/", broken)]


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_a_500_is_logged_to_the_console():
    # The handlers the project's LOGGING gave django.request (Django applied it at setup).
    handlers = logging.getLogger("django.request").handlers
    (console,) = [h for h in handlers if type(h) is logging.StreamHandler]
    captured = io.StringIO()
    original = console.setStream(captured)
    try:
        response = Client(raise_request_exception=False).get("/broken/")
    finally:
        console.setStream(original)
    assert response.status_code == 500
    text = captured.getvalue()
    assert "ERROR django.request: Internal Server Error: /broken/" in text
    assert "RuntimeError: the view broke" in text
