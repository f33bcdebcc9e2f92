"""Console pieces without servers: sessions, redirects after sign-in, filters, the chart."""

from __future__ import annotations

import doctest
import importlib

import pytest
from starlette.datastructures import QueryParams

from app.console.chart import bars
from app.console.queue import parse_filter
from app.console.session import Sessions
from app.console.signin import safe_next


@pytest.mark.parametrize("name", ["app.console.chart", "app.core.keys"])
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0


def test_a_session_reads_back_and_nothing_else_does() -> None:
    book = Sessions("secret", 3600)
    session = book.new("ana", frozenset({"review"}))
    assert book.loads(book.dumps(session)) == session
    assert Sessions("other", 3600).loads(book.dumps(session)) is None  # another secret
    assert book.loads("garbage") is None and book.loads(None) is None
    expired = Sessions("secret", -1)
    assert expired.loads(expired.dumps(expired.new("ana", frozenset()))) is None


def test_the_login_nonce_is_bound_to_its_cookie() -> None:
    book = Sessions("secret", 3600)
    nonce, cookie = book.login_nonce()
    assert book.login_nonce_ok(cookie, nonce)
    assert not book.login_nonce_ok(cookie, nonce + "x")
    assert not book.login_nonce_ok(None, nonce)
    other_nonce, _ = book.login_nonce()
    assert not book.login_nonce_ok(cookie, other_nonce)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/console/queue?order=age", "/console/queue?order=age"),
        ("https://evil.example/", "/console/"),
        ("//evil.example/console/", "/console/"),
        ("/console//evil", "/console/"),
        ("/console/../v1/lists", "/console/"),
        ("/v1/lists", "/console/"),
        (None, "/console/"),
    ],
)
def test_only_console_paths_follow_a_sign_in(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_queue_filters_are_checked_and_named() -> None:
    query, kept, errors = parse_filter(
        QueryParams("order=age&reason=card_amount_high&min_amount=10&max_amount=nan&older_than=5")
    )
    assert (query.order, query.reason, query.min_amount, query.max_amount) == (
        "age", "card_amount_high", 10.0, None,
    )  # fmt: skip
    assert query.opened_before is not None
    assert set(errors) == {"max_amount"} and "max_amount" not in kept
    _, _, errors = parse_filter(QueryParams("order=evil&reason=<b>&min_amount=-1"))
    assert set(errors) == {"order", "reason", "min_amount"}


def test_the_chart_has_a_bar_per_day_and_escapes_its_title() -> None:
    svg = bars({"2026-01-02": 5}, ["2026-01-01", "2026-01-02"], title="<b>")
    assert svg.count("<rect") == 2 and "&lt;b&gt;" in svg and "<b>" not in svg
    assert bars({}, [], small=True).count("<rect") == 0
