"""The demo project logs a server error (a 500) with its traceback on the console."""

from __future__ import annotations

import logging.config

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.urls import path


def broken(request):
    raise RuntimeError("the view broke")


urlpatterns = [path("broken/", broken)]


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_a_500_is_logged_to_the_console(capsys):
    logging.config.dictConfig(settings.LOGGING)
    client = Client(raise_request_exception=False)
    assert client.get("/broken/").status_code == 500
    err = capsys.readouterr().err
    assert "ERROR django.request: Internal Server Error: /broken/" in err
    assert "RuntimeError: the view broke" in err
