"""The dashboard's pages in a real headless Chromium: a run that ends while its page is
open updates every panel, the runs search, the per-step context diff, and phone width."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from pipelines.models import StepExecution
from tests.browser.test_dashboard_browser import browser, text_of, wait_until  # noqa: F401
from tests.helpers.inprocess import drive
from tests.testapp import pipelines as p

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.redis,
    pytest.mark.workers,
    pytest.mark.browser,
]


def login(driver, live_server) -> None:
    from selenium.webdriver.common.by import By

    if not User.objects.filter(username="pages").exists():
        User.objects.create_superuser("pages", "", "correct horse")
    driver.delete_all_cookies()
    driver.get(f"{live_server.url}/admin/login/?next=/pipelines/")
    driver.find_element(By.NAME, "username").send_keys("pages")
    driver.find_element(By.NAME, "password").send_keys("correct horse")
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_until(driver, lambda d: d.current_url.endswith("/pipelines/"))


def test_a_run_failing_while_its_page_is_open_updates_every_panel(
    browser,  # noqa: F811
    live_server,
    workers,
):
    login(browser, live_server)
    run = p.SlowFailingPipeline.trigger({"sleep": 3.0})
    browser.get(f"{live_server.url}/pipelines/runs/{run.pk}/")
    assert "Cancel run" in text_of(browser, "actions")
    assert "Retry failed step" not in text_of(browser, "actions")
    assert "Not yet" in text_of(browser, "run-output")
    browser.execute_script("window.__noReload = true;")

    wait_until(browser, lambda d: text_of(d, "run-status").strip() == "failed")
    assert browser.execute_script("return window.__noReload === true;")
    assert "Cancel run" not in text_of(browser, "actions")
    assert "Retry failed step" in text_of(browser, "actions")
    assert "None: the run failed." in text_of(browser, "run-output")
    steps = text_of(browser, "steps")
    assert "ValueError: card declined after the page was opened" in steps
    assert 'raise ValueError("card declined' in steps  # the user's frame, shown first
    assert "0 of 1 step succeeded · 1 failed" in text_of(browser, "run-progress-text")
    # The failed part of the bar is red, not green.
    colour = browser.execute_script(
        "return getComputedStyle(document.querySelector('#run-progress .seg-failed'))"
        ".backgroundColor;"
    )
    assert colour == "rgb(192, 38, 45)"


def test_a_run_succeeding_while_its_page_is_open_fills_its_output(
    browser,  # noqa: F811
    live_server,
    workers,
):
    login(browser, live_server)
    run = p.DuplicatePipeline.trigger({"counter": "browser-output"})
    browser.get(f"{live_server.url}/pipelines/runs/{run.pk}/")
    assert "Cancel run" in text_of(browser, "actions")
    wait_until(browser, lambda d: text_of(d, "run-status").strip() == "succeeded")
    assert "Cancel run" not in text_of(browser, "actions")
    assert text_of(browser, "run-output").strip() == "Output\n1"


SEARCHES = [
    ("customer_id=abc", {"abc"}),
    ("charge_id=ch_x", {"ch_x"}),
    ("customer_id=07", {"07"}),
    ("customer_id=7", {7}),
    ("customer_id=7.0", {7}),
    ("customer_id=", {""}),
]


def test_runs_search_cases(browser, live_server, redis_conn):  # noqa: F811
    from selenium.webdriver.common.by import By

    login(browser, live_server)
    runs = {}
    for value in ("abc", "ch_x", "07", 7, ""):
        run = drive(p.ChainPipeline.trigger({"n": 1}))
        run.context.set("customer_id" if value != "ch_x" else "charge_id", value)
        runs[value] = run.pk
    for query, expected in SEARCHES:
        browser.get(f"{live_server.url}/pipelines/runs/")
        box = browser.find_element(By.NAME, "q")
        box.clear()
        box.send_keys(query)
        box.submit()
        wait_until(browser, lambda d: "/pipelines/runs/?" in d.current_url)
        links = browser.find_elements(By.CSS_SELECTOR, "table.runs td:first-child a")
        assert {int(a.text.lstrip("#")) for a in links} == {runs[v] for v in expected}, query
    browser.get(f"{live_server.url}/pipelines/runs/?q=%3Db")
    assert "q: key=value needs a context key" in text_of(browser, "bad-input")


def test_context_diff_of_a_step(browser, live_server, redis_conn):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    login(browser, live_server)
    run = drive(p.ChainPipeline.trigger({"n": 1}))
    double = StepExecution.objects.get(run=run, step="Double")
    browser.get(f"{live_server.url}/pipelines/runs/{run.pk}/")
    assert "double-3" in text_of(browser, "context")  # open at the top, not collapsed
    Select(browser.find_element(By.NAME, "after")).select_by_value(str(double.pk))
    browser.find_element(By.XPATH, "//section[@id='context']//button").click()
    wait_until(browser, lambda d: "after=" in d.current_url)
    diff = text_of(browser, "context-diff")
    assert "added\tdouble-3\t6" in diff


PAGES = ["/pipelines/", "/pipelines/runs/", "/pipelines/runs/{run}/", "/pipelines/runs/0/"]


def test_no_horizontal_page_scroll_at_420_px(browser, live_server, redis_conn):  # noqa: F811
    login(browser, live_server)
    failed = drive(p.FailingPipeline.trigger({"n": 1}))
    drive(p.ChainPipeline.trigger({"n": 1}))
    browser.set_window_size(420, 900)
    try:
        for page in PAGES:
            browser.get(live_server.url + page.format(run=failed.pk))
            wide = browser.execute_script(
                "return [document.documentElement.scrollWidth,"
                " document.documentElement.clientWidth];"
            )
            assert wide[0] <= wide[1], (page, wide)
    finally:
        browser.set_window_size(1280, 1600)
