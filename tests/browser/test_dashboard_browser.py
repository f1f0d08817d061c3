"""A person's path through the product, in a real headless Chromium (Debian's chromium and
chromium-driver; never a downloaded browser): place an order from the demo form, watch
the run page reach "succeeded" by itself, open the context, use an action."""

from __future__ import annotations

import os
import shutil

import pytest
from django.contrib.auth.models import User

from pipelines.models import PipelineRun

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.redis,
    pytest.mark.workers,
    pytest.mark.browser,
]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium and chromium-driver must be installed (.ci/run installs them)")
        pytest.skip("apt-get install chromium chromium-driver to run the browser tests")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1600",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def wait_until(driver, condition, timeout=40):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # htmx replaces the live part of the page every 2 s: an element found just before a
    # swap is stale by the time it is read.
    return WebDriverWait(
        driver, timeout, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
    ).until(condition)


def text_of(driver, element_id: str) -> str:
    """Read an element's text in one step (no stale reference in between)."""
    return driver.execute_script(f"return document.getElementById('{element_id}').innerText;")


def test_order_form_to_live_run_page_context_and_rerun(browser, live_server, workers, tmp_path):
    from selenium.webdriver.common.by import By

    User.objects.create_superuser("browser", "", "correct horse")
    browser.get(f"{live_server.url}/admin/login/?next=/demo/")
    browser.find_element(By.NAME, "username").send_keys("browser")
    browser.find_element(By.NAME, "password").send_keys("correct horse")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_until(browser, lambda d: d.find_elements(By.ID, "order-form"))

    browser.find_element(By.NAME, "skus").clear()
    browser.find_element(By.NAME, "skus").send_keys("A1, B2, C3")
    browser.find_element(By.CSS_SELECTOR, "#order-form button[type=submit]").click()
    wait_until(browser, lambda d: "/pipelines/runs/" in d.current_url)
    run = PipelineRun.objects.latest("id")
    assert browser.current_url.endswith(f"/pipelines/runs/{run.pk}/")
    # A marker that a full page load would wipe: the status must change without one.
    browser.execute_script("window.__noReload = true;")

    wait_until(browser, lambda d: text_of(d, "run-status").strip() == "succeeded")
    assert browser.execute_script("return window.__noReload === true;")
    # Progress counts the graph's 9 nodes (the 3 parcels are one node); one of the two
    # carriers is a route not taken.
    assert "8 of 9 steps succeeded · 1 skipped" in text_of(browser, "run-live")
    browser.save_screenshot(str(tmp_path / "run.png"))

    wait_until(browser, lambda d: "order_total" in text_of(d, "context"))
    assert "3750" in text_of(browser, "context")  # 3 x 1250
    assert "ValidateOrder.0" in text_of(browser, "context")

    browser.find_element(By.XPATH, "//button[contains(., 'Re-run with the same input')]").click()
    wait_until(browser, lambda d: not d.current_url.endswith(f"/runs/{run.pk}/"))
    rerun = PipelineRun.objects.latest("id")
    assert rerun.pk != run.pk
    assert rerun.input == run.input
    assert "started with the input of run" in browser.find_element(By.CLASS_NAME, "messages").text
    wait_until(browser, lambda d: text_of(d, "run-status").strip() == "succeeded")
