"""The console over HTTP on the real stack: sessions, CSRF, scopes, escaping, verdicts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeSerializer

from app.main import create_app
from tests.app.conftest import fetchval, tx
from tests.app.console_helpers import (
    ADMIN_KEY,
    ANALYST_KEY,
    API,
    SECRET,
    XSS,
    console_settings,
    csrf_of,
    session_cookie,
    sign_in,
)

PAGES = ("/console/", "/console/queue", "/console/queue/tx-1", "/console/rules",
         "/console/rules/big", "/console/lists")  # fmt: skip


@pytest.fixture
def client(fresh_database: str, api_redis_url: str) -> Iterator[TestClient]:
    app = create_app(console_settings(fresh_database, api_redis_url))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _review_item(client: TestClient, **fields: Any) -> str:
    answer = client.post("/v1/transactions", json=tx(**fields), headers=API)
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"] == "review"
    return str(answer.json()["transaction_id"])


def test_no_page_without_a_session(client: TestClient) -> None:
    for path in PAGES:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/console/login?next=%2Fconsole%2F")
    posted = client.post("/console/rules", data={"expression": "true"}, follow_redirects=False)
    assert posted.status_code == 303
    assert fetchval(client, "SELECT count(*) FROM rules") == 0


def test_an_unknown_key_gets_no_session_and_is_not_echoed(client: TestClient) -> None:
    form = client.get("/console/login")
    answer = client.post(
        "/console/login", data={"csrf": csrf_of(form.text), "key": "wrong-key-secret"}
    )
    assert answer.status_code == 401
    assert "wrong-key-secret" not in answer.text
    assert "rg_console=" not in answer.headers.get("set-cookie", "")
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_the_sign_in_form_needs_its_own_token(client: TestClient) -> None:
    client.get("/console/login")
    answer = client.post("/console/login", data={"csrf": "forged", "key": ADMIN_KEY})
    assert answer.status_code == 403
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_signed_strict_http_only_and_holds_no_key(
    client: TestClient,
) -> None:
    form = client.get("/console/login")
    answer = client.post(
        "/console/login",
        data={"csrf": csrf_of(form.text), "key": ADMIN_KEY},
        follow_redirects=False,
    )
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("rg_console="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "secure" not in attributes  # plain http here; see the https test
    value = cookie.split(";")[0].split("=", 1)[1].strip('"')
    payload = URLSafeSerializer(SECRET, salt="riverguard.console.session").loads(value)
    assert list(payload) == ["i"]  # the session's id only: no key, name or scopes
    assert ADMIN_KEY not in value
    tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    client.cookies.set("rg_console", tampered, path="/console")
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_the_cookie_is_secure_over_https_and_behind_a_tls_proxy(
    fresh_database: str, api_redis_url: str
) -> None:
    app = create_app(console_settings(fresh_database, api_redis_url))
    with TestClient(app, base_url="https://console.test") as tls:
        form = tls.get("/console/login")
        answer = tls.post(
            "/console/login",
            data={"csrf": csrf_of(form.text), "key": ADMIN_KEY},
            follow_redirects=False,
        )
        cookie = answer.headers["set-cookie"]
        assert "secure" in cookie.lower() and "samesite=strict" in cookie.lower()
    with TestClient(app) as proxied:
        form = proxied.get("/console/login", headers={"X-Forwarded-Proto": "https"})
        assert "secure" in form.headers["set-cookie"].lower()


def test_a_form_without_the_csrf_token_is_refused(client: TestClient) -> None:
    item = _review_item(client)
    csrf = sign_in(client, ANALYST_KEY)
    for data in ({"verdict": "fraud"}, {"verdict": "fraud", "csrf": csrf + "x"}):
        answer = client.post(f"/console/queue/{item}", data=data)
        assert answer.status_code == 403
    verdict = "SELECT verdict FROM review_queue WHERE transaction_id = $1"
    assert fetchval(client, verdict, item) is None


def test_a_review_key_cannot_reach_rules_or_lists(client: TestClient) -> None:
    csrf = sign_in(client, ANALYST_KEY)
    for path in ("/console/rules", "/console/rules/big", "/console/lists"):
        answer = client.get(path)
        assert answer.status_code == 403, path
        assert "admin" in answer.text
    rule = {"csrf": csrf, "id": "big", "expression": "amount > 1.0", "action": "review",
            "do": "save", "enabled": "on"}  # fmt: skip
    assert client.post("/console/rules", data=rule).status_code == 403
    entry = {"csrf": csrf, "entity": "card", "kind": "block", "value": "c1", "reason": "r"}
    assert client.post("/console/lists", data=entry).status_code == 403
    assert fetchval(client, "SELECT count(*) FROM rules") == 0
    assert fetchval(client, "SELECT count(*) FROM list_entries") == 0
    page = client.get("/console/")
    assert 'href="/console/rules"' not in page.text and 'href="/console/queue"' in page.text


def test_a_verdict_is_one_review_label_and_leads_to_the_next_item(client: TestClient) -> None:
    first, second = _review_item(client, amount=900), _review_item(client, amount=20)
    csrf = sign_in(client, ANALYST_KEY)
    queue = client.get("/console/queue?order=age")
    assert queue.status_code == 200 and first in queue.text and second in queue.text
    page = client.get(f"/console/queue/{first}?order=age")
    assert page.status_code == 200 and "card_1" in page.text
    answer = client.post(
        f"/console/queue/{first}?order=age",
        data={"csrf": csrf, "verdict": "fraud", "note": "cardholder denies"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/console/queue/{second}?order=age"
    again = client.post(f"/console/queue/{first}", data={"csrf": csrf, "verdict": "legitimate"})
    assert again.status_code == 409 and "Already decided: fraud by ana" in again.text
    labels = fetchval(
        client,
        "SELECT count(*) FROM labels WHERE transaction_id = $1 AND source = 'review'",
        first,
    )
    assert labels == 1
    analyst = fetchval(client, "SELECT analyst FROM review_queue WHERE transaction_id = $1", first)
    assert analyst == "ana"
    last = client.post(
        f"/console/queue/{second}?order=age",
        data={"csrf": csrf, "verdict": "unsure"},
        follow_redirects=False,
    )
    assert last.headers["location"].startswith("/console/queue?order=age&done=1")


def test_a_note_with_a_card_number_is_refused_and_not_shown(client: TestClient) -> None:
    item = _review_item(client)
    csrf = sign_in(client, ANALYST_KEY)
    pan = "4111111111111111"
    answer = client.post(
        f"/console/queue/{item}", data={"csrf": csrf, "verdict": "fraud", "note": f"card {pan}"}
    )
    assert answer.status_code == 422 and pan not in answer.text
    verdict = "SELECT verdict FROM review_queue WHERE transaction_id = $1"
    assert fetchval(client, verdict, item) is None


def test_values_from_storage_and_people_are_text(client: TestClient) -> None:
    # intake refuses such a merchant id (identifiers are [A-Za-z0-9_.:-]); plant it as if an
    # older version had stored it, and check every page shows it as text
    item = _review_item(client)
    fetchval(client, "UPDATE scored_transactions SET merchant_id = $1 WHERE transaction_id = $2",
             XSS, item)  # fmt: skip
    csrf = sign_in(client, ADMIN_KEY)
    for path in ("/console/queue", f"/console/queue/{item}"):
        page = client.get(path)
        assert page.status_code == 200
        assert XSS not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
    entry = {"csrf": csrf, "entity": "card", "kind": "watch", "value": "card_9", "reason": XSS}
    assert client.post("/console/lists", data=entry).status_code == 200  # redirect followed
    page = client.get("/console/lists")
    assert XSS not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text


def test_a_bad_rule_shows_the_error_next_to_the_expression(client: TestClient) -> None:
    csrf = sign_in(client, ADMIN_KEY)
    rule = {"csrf": csrf, "id": "bad", "expression": "amount > ", "action": "review", "do": "save"}
    answer = client.post("/console/rules", data=rule)
    assert answer.status_code == 422
    assert 'id="error-expression"' in answer.text
    unknown = client.post("/console/rules", data={**rule, "expression": "no_such_var > 1.0"})
    assert unknown.status_code == 422 and 'id="error-expression"' in unknown.text
    assert fetchval(client, "SELECT count(*) FROM rules") == 0


def test_rules_save_backtest_enable_and_audit(client: TestClient) -> None:
    _review_item(client, amount=500)
    _review_item(client, amount=5)
    csrf = sign_in(client, ADMIN_KEY)
    rule = {"csrf": csrf, "id": "big", "name": "big", "expression": "amount > 100.0",
            "action": "decline", "priority": "10", "days": "7"}  # fmt: skip
    tested = client.post("/console/rules", data={**rule, "do": "backtest"})
    assert tested.status_code == 200
    assert '<dd id="bt-hits">1 (50.00%)</dd>' in tested.text and "<svg" in tested.text
    saved = client.post("/console/rules", data={**rule, "do": "save"}, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/console/rules/big"
    assert fetchval(client, "SELECT enabled FROM rules WHERE id = 'big'") is False
    page = client.get("/console/rules/big")
    assert "disabled" in page.text
    switched = client.post("/console/rules/big/enabled", data={"csrf": csrf, "enabled": "true"})
    assert switched.status_code == 200 and '<dd id="rule-state">enabled</dd>' in switched.text
    assert "ops" in switched.text  # the audit names who changed it
    answer = client.post("/v1/transactions", json=tx(amount=700), headers=API).json()
    assert (answer["decided_by"], answer["rule_id"]) == ("rule", "big")
    listing = client.get("/console/rules")
    assert listing.status_code == 200 and 'id="rule-big"' in listing.text


def test_a_list_entry_is_added_searched_and_removed(client: TestClient) -> None:
    csrf = sign_in(client, ADMIN_KEY)
    entry = {"csrf": csrf, "entity": "card", "kind": "block", "value": "card_bad",
             "reason": "takeover", "expires": "2999-01-01T00:00"}  # fmt: skip
    assert client.post("/console/lists", data=entry).status_code == 200
    assert client.post("/console/lists", data=entry).status_code == 409
    answer = client.post("/v1/transactions", json=tx(card_id="card_bad"), headers=API).json()
    assert (answer["decision"], answer["decided_by"]) == ("decline", "list")
    found = client.get("/console/lists?prefix=card_b")
    assert "card_bad" in found.text and "takeover" in found.text
    assert "card_bad" not in client.get("/console/lists?prefix=card_x").text
    pan = "4111111111111111"
    refused = client.post("/console/lists", data={**entry, "value": pan})
    assert refused.status_code == 422 and pan not in refused.text
    entry_id = re.search(r'name="id" value="(\d+)"', client.get("/console/lists").text)
    assert entry_id is not None
    removal = {"csrf": csrf, "id": entry_id.group(1)}
    assert client.post("/console/lists/remove", data=removal).status_code == 200
    assert fetchval(client, "SELECT removed_by FROM list_entries WHERE value = 'card_bad'") == "ops"


def test_the_overview_counts_todays_decisions_and_signs_out(client: TestClient) -> None:
    _review_item(client)
    csrf = sign_in(client, ADMIN_KEY)
    page = client.get("/console/")
    assert '<div class="big" id="total">1</div>' in page.text
    assert "http://localhost:3000/d/riverguard-service" in page.text
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]  # the API's document only
    assert client.post("/console/logout", data={"csrf": csrf}).status_code == 200
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_sign_out_ends_the_session_on_the_server(client: TestClient) -> None:
    csrf = sign_in(client, ADMIN_KEY)
    stolen = session_cookie(client)  # a copy kept elsewhere (another tab, a thief)
    assert client.post("/console/logout", data={"csrf": csrf}).status_code == 200
    client.cookies.set("rg_console", stolen, path="/console")
    assert client.get("/console/", follow_redirects=False).status_code == 303
    assert fetchval(client, "SELECT count(*) FROM console_sessions") == 0


def test_a_key_without_a_console_scope_gets_no_session(client: TestClient) -> None:
    form = client.get("/console/login")
    answer = client.post("/console/login", data={"csrf": csrf_of(form.text), "key": "score-key"})
    assert answer.status_code == 403 and "score-key" not in answer.text
    assert "rg_console=" not in answer.headers.get("set-cookie", "")
    assert client.get("/console/", follow_redirects=False).status_code == 303
    assert fetchval(client, "SELECT count(*) FROM console_sessions") == 0


def _session_under(keys: str, database: str, redis_url: str, key: str) -> str:
    """Sign in with ``key`` on a service run with ``keys``; the session cookie."""
    app = create_app(console_settings(database, redis_url, api_keys=keys))
    with TestClient(app) as first:
        sign_in(first, key)
        return session_cookie(first)


def _pages_under(keys: str, database: str, redis_url: str, cookie: str) -> dict[str, object]:
    """For ``cookie`` on a service with ``keys``: who the overview names, and page statuses."""
    app = create_app(console_settings(database, redis_url, api_keys=keys))
    with TestClient(app) as later:
        later.cookies.set("rg_console", cookie, path="/console")
        paths = ("/console/", "/console/queue", "/console/rules")
        seen: dict[str, object] = {
            path: later.get(path, follow_redirects=False).status_code for path in paths
        }
        who = re.search(r'id="who">([^<]*)<', later.get("/console/").text)
        seen["who"] = who.group(1) if who else None
        return seen


def test_a_rotated_or_removed_key_refuses_its_sessions(
    fresh_database: str, api_redis_url: str
) -> None:
    keys = "old-secret-key=review|admin@ops"
    cookie = _session_under(keys, fresh_database, api_redis_url, "old-secret-key")
    same = _pages_under(keys, fresh_database, api_redis_url, cookie)
    assert same == {"/console/": 200, "/console/queue": 200, "/console/rules": 200, "who": "ops"}
    for keys_now in ("new-secret-key=review|admin@ops", "other-key=review@ana"):  # rotated, removed
        pages = _pages_under(keys_now, fresh_database, api_redis_url, cookie)
        assert pages == {"/console/": 303, "/console/queue": 303, "/console/rules": 303,
                         "who": None}, keys_now  # fmt: skip


def test_reordering_unnamed_keys_keeps_each_session_with_its_key(
    fresh_database: str, api_redis_url: str
) -> None:
    analyst = "analyst-key=review"  # key-1 first, key-2 after the reordering
    admin = "admin-key=score|label|review|admin"
    cookie = _session_under(f"{analyst},{admin}", fresh_database, api_redis_url, "analyst-key")
    reordered = _pages_under(f"{admin},{analyst}", fresh_database, api_redis_url, cookie)
    assert reordered == {"/console/": 200, "/console/queue": 200, "/console/rules": 403,
                         "who": "key-2"}  # fmt: skip
    # the analyst's key removed, another unnamed key now first: it inherits no session
    taken = _pages_under("someone-else=review", fresh_database, api_redis_url, cookie)
    assert taken["/console/"] == 303 and taken["who"] is None


def test_a_listed_value_that_looks_like_a_card_number_never_reaches_the_page(
    client: TestClient,
) -> None:
    csrf = sign_in(client, ADMIN_KEY)
    digits = "4111111111111111"  # a numeric merchant id may pass Luhn: listed, shown masked
    entry = {"csrf": csrf, "entity": "merchant", "kind": "watch", "value": digits, "reason": "r"}
    assert client.post("/console/lists", data=entry).status_code == 200
    page = client.get("/console/lists")
    assert page.status_code == 200 and "merchant" in page.text
    assert digits not in page.text  # neither shown nor in the remove form's hidden inputs
    entry_id = re.search(r'name="id" value="(\d+)"', page.text)
    assert entry_id is not None
    for forged in ("0", "x", "9" * 40):
        refused = client.post("/console/lists/remove", data={"csrf": csrf, "id": forged})
        assert refused.status_code == 404
    removal = {"csrf": csrf, "id": entry_id.group(1)}
    assert client.post("/console/lists/remove", data=removal).status_code == 200
    removed_by = "SELECT removed_by FROM list_entries WHERE value = $1"
    assert fetchval(client, removed_by, digits) == "ops"
