"""Console pieces without servers: sessions, redirects after sign-in, filters, the chart."""

from __future__ import annotations

import doctest
import importlib
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from itsdangerous import URLSafeSerializer
from starlette.datastructures import QueryParams

from app.console.chart import bars
from app.console.queue import parse_filter
from app.console.session import Sessions
from app.console.signin import safe_next
from app.core.keys import KeyRing, digest, parse_keys
from app.core.sessions import SessionRecord


@pytest.mark.parametrize("name", ["app.console.chart", "app.core.keys"])
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0


@dataclass
class MemorySessions:
    """The SessionStore port in a dictionary."""

    rows: dict[bytes, SessionRecord] = field(default_factory=dict)

    async def open(self, record: SessionRecord, now: datetime) -> None:
        self.rows = {k: r for k, r in self.rows.items() if r.expires_at > now}
        self.rows[record.id_hash] = record

    async def find(self, hashed: bytes, now: datetime) -> SessionRecord | None:
        found = self.rows.get(hashed)
        return found if found is not None and found.expires_at > now else None

    async def end(self, hashed: bytes) -> None:
        self.rows.pop(hashed, None)


def _ring(text: str) -> KeyRing:
    return KeyRing(tuple(parse_keys(text)))


async def test_a_session_reads_back_with_its_key_as_configured_now() -> None:
    book, store, ring = Sessions("secret", 3600), MemorySessions(), _ring("k1=review@ana")
    cookie = await book.open(store, digest("k1"))
    session = await book.resolve(store, ring, cookie)
    assert session is not None and (session.name, session.scopes) == ("ana", {"review"})
    payload = URLSafeSerializer("secret", salt="riverguard.console.session").loads(cookie)
    assert list(payload) == ["i"]  # the session's id: no key, no name, no scopes
    assert await book.resolve(store, _ring("k1=review|admin@bo"), cookie) is not None
    assert await book.resolve(store, _ring("k2=review@ana"), cookie) is None  # rotated
    assert await book.resolve(store, _ring("k1=score|label@ana"), cookie) is None  # no console
    assert await Sessions("other", 3600).resolve(store, ring, cookie) is None  # another secret
    assert await book.resolve(store, ring, "garbage") is None
    assert await book.resolve(store, ring, None) is None
    await store.end(session.hashed)
    assert await book.resolve(store, ring, cookie) is None  # signed out
    expired = Sessions("secret", -1)
    assert await expired.resolve(store, ring, await expired.open(store, digest("k1"))) is None


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
