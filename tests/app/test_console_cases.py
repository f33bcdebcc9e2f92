"""The console's case pages over HTTP on the real stack: CSRF, scopes, escaping, claims,
notes, closes and bulk close."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.conftest import fetchval, tx
from tests.app.console_helpers import ANALYST_KEY, API, XSS, console_settings, sign_in

PAN = "4111111111111111"


@pytest.fixture
def client(fresh_database: str, api_redis_url: str) -> Iterator[TestClient]:
    app = create_app(console_settings(fresh_database, api_redis_url))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _case(client: TestClient, card: str, **fields: Any) -> int:
    answer = client.post("/v1/transactions", json=tx(card_id=card, **fields), headers=API)
    assert answer.status_code == 200, answer.text
    return int(fetchval(client, "SELECT id FROM cases WHERE card_id = $1", card))


def test_case_forms_need_the_csrf_token_and_the_review_scope(client: TestClient) -> None:
    case_id = _case(client, "card_csrf")
    csrf = sign_in(client, ANALYST_KEY)
    for action, data in (
        ("claim", {"go": "1"}),
        ("close", {"outcome": "fraud"}),
        ("note", {"note": "x"}),
    ):
        for token in ({}, {"csrf": csrf + "x"}):
            answer = client.post(f"/console/cases/{case_id}/{action}", data={**data, **token})
            assert answer.status_code == 403
    answer = client.post("/console/cases", data={"case": str(case_id), "outcome": "fraud"})
    assert answer.status_code == 403
    assert fetchval(client, "SELECT count(*) FROM case_audit WHERE who = 'ana'") == 0
    assert fetchval(client, "SELECT status FROM cases WHERE id = $1", case_id) == "open"


def test_claim_note_close_from_the_case_page(client: TestClient) -> None:
    case_id = _case(client, "card_page", merchant_id="m_page")
    csrf = sign_in(client, ANALYST_KEY)
    inbox = client.get("/console/cases")
    assert inbox.status_code == 200 and f"/console/cases/{case_id}" in inbox.text
    claimed = client.post(f"/console/cases/{case_id}/claim", data={"csrf": csrf})
    assert claimed.status_code == 200 and 'id="holder">ana until' in claimed.text
    mine = client.get("/console/cases?view=mine")
    assert f"/console/cases/{case_id}" in mine.text
    note = client.post(f"/console/cases/{case_id}/note", data={"csrf": csrf, "note": XSS})
    assert note.status_code == 200 and XSS not in note.text and "&lt;img" in note.text
    pan = client.post(f"/console/cases/{case_id}/note", data={"csrf": csrf, "note": f"pan {PAN}"})
    assert pan.status_code == 422 and PAN not in pan.text
    bad = client.post(f"/console/cases/{case_id}/close", data={"csrf": csrf, "outcome": "maybe"})
    assert bad.status_code == 422
    closed = client.post(f"/console/cases/{case_id}/close", data={"csrf": csrf, "outcome": "fraud"})
    assert closed.status_code == 200 and 'id="case-status">closed: fraud' in closed.text
    assert fetchval(client, "SELECT count(*) FROM labels WHERE source = 'review'") == 1
    again = client.post(f"/console/cases/{case_id}/close", data={"csrf": csrf, "outcome": "fraud"})
    assert again.status_code == 409 and "Already closed as fraud by ana" in again.text
    assert client.get("/console/cases/999999").status_code == 404
    assert client.get("/console/cases/abc").status_code == 404


def test_bulk_close_from_the_inbox(client: TestClient) -> None:
    ids = [_case(client, card) for card in ("card_b1", "card_b2", "card_b3")]
    csrf = sign_in(client, ANALYST_KEY)
    body = "&".join([f"csrf={csrf}", "outcome=legitimate", *(f"case={i}" for i in ids[:2])])
    answer = client.post(
        "/console/cases",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200 and "Closed 2-of-2" in answer.text
    statuses = [fetchval(client, "SELECT outcome FROM cases WHERE id = $1", i) for i in ids]
    assert statuses == ["legitimate", "legitimate", None]
    assert re.search(rf'value="{ids[2]}"', answer.text)
