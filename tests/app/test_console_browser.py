"""The console in a real Chromium against the real service: sign in, work the queue with the
keyboard, write / backtest / enable a rule, list an entry, sign out; escaping in the DOM."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.app.browser import chromium, screenshot, serving
from tests.app.conftest import tx
from tests.app.console_helpers import ADMIN_KEY, API, XSS, console_settings

WAIT = 20


@pytest.fixture
def site(fresh_database: str, api_redis_url: str) -> Iterator[tuple[str, str]]:
    """(base URL of a service whose every transaction is decided review, database URL)."""
    with serving(console_settings(fresh_database, api_redis_url)) as url:
        yield url, fresh_database


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


def sql(database_url: str, query: str, *args: Any) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchval(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def score(url: str, **fields: Any) -> dict[str, Any]:
    answer = httpx.post(f"{url}/v1/transactions", json=tx(**fields), headers=API, timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def text_of(driver: webdriver.Chrome, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def until(driver: webdriver.Chrome, condition: Any) -> None:
    """Wait for ``condition(driver)``; a page replaced while it looks is looked at again."""
    WebDriverWait(driver, WAIT, ignored_exceptions=[StaleElementReferenceException]).until(
        condition
    )


def wait_for(driver: webdriver.Chrome, css: str) -> None:
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, css))


def learned(database_url: str, count: int) -> None:
    """Wait until the learner has settled ``count`` labels (the backtest reads them)."""
    deadline = time.monotonic() + WAIT
    query = "SELECT count(*) FROM transaction_ids WHERE label_is_fraud IS NOT NULL"
    while sql(database_url, query) < count:
        assert time.monotonic() < deadline, "the review labels were not learned"
        time.sleep(0.1)


def press(driver: webdriver.Chrome, key: str) -> None:
    ActionChains(driver).send_keys(key).perform()


def sign_in(driver: webdriver.Chrome, url: str, key: str) -> None:
    driver.get(f"{url}/console/")
    wait_for(driver, "#key")  # no session: the sign-in form
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "sign-in").click()
    wait_for(driver, "#who")


def test_an_analyst_session_end_to_end(site: tuple[str, str], browser: webdriver.Chrome) -> None:
    url, db = site
    days_ago = {1500: 3, 40: 2, 2500: 1}  # spread over days: the backtest chart shows them
    items = [
        score(url, amount=a, timestamp=(datetime.now(UTC) - timedelta(days=d)).isoformat())[
            "transaction_id"
        ]
        for a, d in days_ago.items()
    ]
    sign_in(browser, url, ADMIN_KEY)
    assert text_of(browser, "#who") == "ops"

    # the queue, oldest first: j selects the first row, Enter opens it; f / l / u decide and
    # each verdict moves on to the next open item
    browser.get(f"{url}/console/queue?order=age")
    wait_for(browser, "#queue tr[data-href]")
    screenshot(browser, "console-queue.png")
    press(browser, "j")
    press(browser, Keys.ENTER)
    for transaction_id, key in zip(items, "flu", strict=True):
        until(
            browser,
            lambda d, t=transaction_id: (
                d.find_elements(By.ID, "tx-id") and text_of(d, "#tx-id") == t
            ),
        )
        press(browser, key)
    wait_for(browser, "#done")
    verdicts = [
        sql(db, "SELECT verdict || ':' || analyst FROM review_queue WHERE transaction_id = $1", t)
        for t in items
    ]
    assert verdicts == ["fraud:ops", "legitimate:ops", "unsure:ops"]
    labels = [
        sql(db, "SELECT count(*) FROM labels WHERE transaction_id = $1 AND source = 'review'", t)
        for t in items
    ]
    assert labels == [1, 1, 0]
    learned(db, 2)

    # a bad rule: the error is shown next to the expression, nothing is saved
    browser.get(f"{url}/console/rules")
    browser.find_element(By.ID, "expression").send_keys("amount >> 1000.0")
    browser.find_element(By.ID, "rule-id").send_keys("big")
    browser.find_element(By.ID, "do-save").click()
    wait_for(browser, "#error-expression")
    assert text_of(browser, "#error-expression")
    assert sql(db, "SELECT count(*) FROM rules") == 0

    # a good one: backtest (hits, precision, chart), save disabled, enable, and it decides
    expression = browser.find_element(By.ID, "expression")
    expression.clear()
    expression.send_keys("amount > 1000.0")
    browser.find_element(By.CSS_SELECTOR, "#action option[value=decline]").click()
    browser.find_element(By.ID, "do-backtest").click()
    wait_for(browser, "#backtest svg.chart")
    assert text_of(browser, "#bt-hits").startswith("2 ")
    # hits: 1500 (fraud) and 2500 (unsure: no label) — one labelled hit, a fraud
    assert text_of(browser, "#bt-precision").startswith("100.00% (1 frauds of 1 labelled")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#backtest svg.chart rect")) >= 1
    browser.execute_script("document.getElementById('backtest').scrollIntoView()")
    screenshot(browser, "console-backtest.png")
    browser.find_element(By.ID, "do-save").click()
    wait_for(browser, "#rule-state")
    assert text_of(browser, "#rule-state") == "disabled"
    before = score(url, amount=5000)
    assert before["decided_by"] == "model"
    browser.find_element(By.ID, "toggle").click()
    until(browser, lambda d: text_of(d, "#rule-state") == "enabled")
    assert "ops" in text_of(browser, "#history")
    after = score(url, amount=5000)
    assert (after["decision"], after["decided_by"], after["rule_id"]) == ("decline", "rule", "big")

    # a list entry, and it hits
    browser.get(f"{url}/console/lists")
    browser.find_element(By.ID, "add-value").send_keys("card_stolen")
    browser.find_element(By.ID, "add-reason").send_keys("reported stolen")
    browser.find_element(By.ID, "add").click()
    until(browser, lambda d: "card_stolen" in text_of(d, "#entries"))
    hit = score(url, card_id="card_stolen", amount=3)
    assert (hit["decision"], hit["decided_by"]) == ("decline", "list")

    # sign out: back to the form, and no page without signing in again
    browser.find_element(By.ID, "sign-out").click()
    wait_for(browser, "#key")
    browser.get(f"{url}/console/queue")
    wait_for(browser, "#key")


def test_stored_markup_is_text_and_runs_nothing(
    site: tuple[str, str], browser: webdriver.Chrome
) -> None:
    url, db = site
    item = score(url)["transaction_id"]
    # intake refuses such an id; plant it as if stored by an older version
    sql(db, "UPDATE scored_transactions SET merchant_id = $1 WHERE transaction_id = $2", XSS, item)
    sign_in(browser, url, ADMIN_KEY)
    for path in ("/console/queue", f"/console/queue/{item}"):
        browser.get(f"{url}{path}")
        wait_for(browser, "#who")
        title = browser.title
        browser.execute_script("return document.readyState")
        with pytest.raises(NoAlertPresentException):
            _ = browser.switch_to.alert.text
        assert browser.title == title
        assert XSS in browser.find_element(By.TAG_NAME, "main").text
        assert not browser.find_elements(By.CSS_SELECTOR, "main img")
    assert text_of(browser, "#merchant") == XSS
