"""Two analysts work one case in two real Chromium sessions against the real service: one
claims, the other sees it held; notes; a close as fraud whose transactions are learned once;
the audit names both."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.app.browser import chromium, screenshot, serving
from tests.app.console_helpers import ADMIN_KEY, ANALYST_KEY, XSS, console_settings
from tests.app.test_console_browser import (
    WAIT,
    press,
    score,
    sign_in,
    sql,
    text_of,
    until,
    wait_for,
)


@pytest.fixture
def site(fresh_database: str, api_redis_url: str) -> Iterator[tuple[str, str]]:
    """(base URL of a service whose every transaction is decided review, database URL)."""
    with serving(console_settings(fresh_database, api_redis_url)) as url:
        yield url, fresh_database


@pytest.fixture
def two() -> Iterator[tuple[webdriver.Chrome, webdriver.Chrome]]:
    with chromium() as first, chromium() as second:
        yield first, second


def learned_once(db: str, transaction_ids: list[str]) -> None:
    deadline = time.monotonic() + WAIT
    query = "SELECT count(*) FROM learn_log WHERE transaction_id = ANY($1::text[])"
    while sql(db, query, transaction_ids) < len(transaction_ids):
        assert time.monotonic() < deadline, "the case's labels were not learned"
        time.sleep(0.1)
    for transaction_id in transaction_ids:
        count = "SELECT count(*) FROM learn_log WHERE transaction_id = $1"
        assert sql(db, count, transaction_id) == 1


def test_two_analysts_work_one_case(
    site: tuple[str, str], two: tuple[webdriver.Chrome, webdriver.Chrome]
) -> None:
    url, db = site
    ana, ops = two
    ids = [score(url, card_id="card_two", amount=a)["transaction_id"] for a in (20, 900, 45)]
    case_id = sql(db, "SELECT id FROM cases WHERE card_id = 'card_two'")

    # ana opens the inbox, picks the case with the keyboard and claims it (c)
    sign_in(ana, url, ANALYST_KEY)
    ana.get(f"{url}/console/cases")
    wait_for(ana, "#cases tr[data-href]")
    press(ana, "j")
    press(ana, Keys.ENTER)
    until(ana, lambda d: d.find_elements(By.ID, "case-id"))
    assert text_of(ana, "#case-id") == f"#{case_id}"
    assert len(ana.find_elements(By.CSS_SELECTOR, "#transactions tbody tr")) == 3
    press(ana, "c")
    until(ana, lambda d: text_of(d, "#holder").startswith("ana until"))
    assert text_of(ana, "#case-status") == "investigating"

    # ops sees it held: in the inbox and on the case page, with no claim or close to press
    sign_in(ops, url, ADMIN_KEY)
    ops.get(f"{url}/console/cases")
    wait_for(ops, "#cases tr[data-href]")
    assert text_of(ops, "#cases td.holder") == "ana"
    ops.get(f"{url}/console/cases/{case_id}")
    wait_for(ops, "#held-notice")
    assert "ana is working this case" in text_of(ops, "#held-notice")
    assert not ops.find_elements(By.ID, "claim") and not ops.find_elements(By.ID, "close-fraud")
    press(ops, "f")  # the shortcut has no button to press here: nothing happens
    ops.find_element(By.ID, "note").send_keys("same device as last week's chargeback")
    ops.find_element(By.ID, "add-note").click()
    until(ops, lambda d: "same device" in text_of(d, "#notes"))

    # ana notes (markup stays text) and closes as fraud with f
    ana.find_element(By.ID, "note").send_keys(f"customer denies {XSS}")
    ana.find_element(By.ID, "add-note").click()
    until(ana, lambda d: XSS in text_of(d, "#notes"))
    assert not ana.find_elements(By.CSS_SELECTOR, "#notes img")
    screenshot(ana, "console-case.png")
    press(ana, "f")
    until(ana, lambda d: text_of(d, "#case-status") == "closed: fraud")

    # every transaction of the case is learned once, as a fraud label of source review
    learned_once(db, ids)
    labels = "SELECT count(*) FROM labels WHERE source = 'review' AND is_fraud"
    assert sql(db, labels) == 3
    ana.refresh()
    wait_for(ana, "#audit")
    rows = [r.text for r in ana.find_elements(By.CSS_SELECTOR, "#audit tbody tr")]
    actions = [(r.split()[2], r.split()[3]) for r in rows]
    assert ("ana", "claim") in actions and ("ops", "note") in actions
    assert ("ana", "note") in actions and ("ana", "close") in actions
    assert sum(a == ("riverguard", "alert") for a in actions) == 3
    assert "fraud" in text_of(ana, "#transactions")  # the labels show on the case's rows
