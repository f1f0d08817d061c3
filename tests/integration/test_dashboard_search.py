"""The runs search ``key=value``: one rule on every database, never a server error."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from tests.helpers.inprocess import drive
from tests.testapp import pipelines as p

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


@pytest.fixture
def client(db):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_pipelinerun"))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def runs(redis_conn):
    values = {
        "int": 7,
        "float": 7.5,
        "text": "abc",
        "charge": "ch_x",
        "zero": "07",
        "quoted": "7",
        "empty": "",
        "yes": True,
        "nothing": None,
        "listed": [1, 2],
    }
    made = {}
    for name, value in values.items():
        run = drive(p.ChainPipeline.trigger({"n": 1}))
        run.context.set("customer_id", value)
        run.context.set("charge_id", value)
        made[name] = run.pk
    return made


CASES = [
    ("customer_id=7", {"int"}),
    ("customer_id=7.0", {"int"}),  # compared as JSON numbers
    ("customer_id=7.5", {"float"}),
    ("customer_id=abc", {"text"}),
    ("charge_id=ch_x", {"charge"}),
    ("customer_id=07", {"zero"}),  # not a JSON number: the string "07"
    ('customer_id="7"', {"quoted"}),
    ("customer_id=", {"empty"}),
    ("customer_id=true", {"yes"}),
    ("customer_id=null", {"nothing"}),
    ("customer_id=NaN", set()),
    ("customer_id=1e400", set()),
    ("customer_id=99999999999999999999", set()),
    ("customer_id=a=b", set()),
    ("missing=abc", set()),
    (" customer_id = abc ", {"text"}),
]


@pytest.mark.parametrize(("query", "expected"), CASES)
def test_key_value_search_reads_the_value_as_json_or_else_as_text(client, runs, query, expected):
    response = client.get(reverse("pipelines:runs"), {"q": query})
    assert response.status_code == 200
    found = {run.pk for run in response.context["page"].object_list}
    assert found == {runs[name] for name in expected}


@pytest.mark.parametrize("query", ["=b", " =abc", "1=abc", "customer_id=[1,2]", "k={}"])
def test_a_search_without_a_usable_key_is_a_bad_request(client, runs, query):
    response = client.get(reverse("pipelines:runs"), {"q": query})
    assert response.status_code == 400
    assert b"q:" in response.content
