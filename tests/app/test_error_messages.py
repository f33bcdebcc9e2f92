"""Every rejection, on every route, carries ``loc`` (FastAPI's ``["body", ...]`` convention),
``type`` and a human ``msg`` — and never the rejected value, a card number least of all."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from features import messages
from tests.app.conftest import ADMIN, LABELER, SCORER, tx

PAN = "4111111111111111"
REVIEWER = {"X-API-Key": "admin-key"}

Send = Callable[[TestClient], httpx.Response]
CASES: dict[str, tuple[Send, list[str]]] = {
    "transaction PAN": (
        lambda c: c.post("/v1/transactions", json=tx(card_id=PAN), headers=SCORER),
        ["body", "card_id"],
    ),
    "transaction amount as a string": (
        lambda c: c.post("/v1/transactions", json=tx(amount="12.5"), headers=SCORER),
        ["body", "amount"],
    ),
    "transaction currency": (
        lambda c: c.post("/v1/transactions", json=tx(currency="ZZZ"), headers=SCORER),
        ["body", "currency"],
    ),
    "transaction not an object": (
        lambda c: c.post("/v1/transactions", json=[1, 2], headers=SCORER),
        ["body"],
    ),
    "label source": (
        lambda c: c.post(
            "/v1/labels",
            json={"transaction_id": "t1", "is_fraud": True, "labeled_at": "x", "source": PAN},
            headers=LABELER,
        ),
        ["body", "labeled_at"],
    ),
    "list PAN value": (
        lambda c: c.post(
            "/v1/lists",
            json={"entity": "card", "value": PAN, "kind": "block", "reason": "r"},
            headers=ADMIN,
        ),
        ["body", "value"],
    ),
    "list expiry in the past": (
        lambda c: c.post(
            "/v1/lists",
            json={
                "entity": "card",
                "value": "card_9",
                "kind": "block",
                "reason": "r",
                "expires_at": "2020-01-01T00:00:00Z",
            },
            headers=ADMIN,
        ),
        ["body", "expires_at"],
    ),
    "list unknown field": (
        lambda c: c.post(
            "/v1/lists",
            json={"entity": "card", "value": "c", "kind": "block", "reason": "r", "x": PAN},
            headers=ADMIN,
        ),
        ["body", "x"],
    ),
    "list prefix PAN": (
        lambda c: c.get("/v1/lists", params={"prefix": PAN}, headers=ADMIN),
        ["query", "prefix"],
    ),
    "rule expression": (
        lambda c: c.post(
            "/v1/rules",
            json={"id": "r1", "name": "n", "expression": f'card_id == "{PAN}"', "action": "review"},
            headers=ADMIN,
        ),
        ["body", "expression"],
    ),
    "card path PAN": (
        lambda c: c.get(f"/v1/cards/{PAN}/features", headers=ADMIN),
        ["path", "card_id"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_errors_carry_loc_type_and_msg_without_the_value(client: TestClient, case: str) -> None:
    send, location = CASES[case]
    response = send(client)
    assert response.status_code in (400, 422), response.text
    errors = response.json()["errors"]
    assert any(e["loc"] == location for e in errors), errors
    for error in errors:
        assert set(error) >= {"loc", "type", "msg"}
        assert error["msg"] and error["msg"] != error["type"], error
    assert PAN not in response.text and "12.5" not in json.dumps(errors)


def test_every_own_error_type_has_a_message() -> None:
    for kind, text in messages.MESSAGES.items():
        assert messages.message(kind) == text and PAN not in text


def test_a_template_that_would_quote_the_input_is_not_used() -> None:
    template = f"Input tag '{PAN}' found using 'kind' does not match any of the expected tags"
    assert messages.message("union_tag_invalid", template) == messages.GENERIC


def test_the_stored_amount_reads_back_as_the_number_sent(client: TestClient) -> None:
    body: dict[str, Any] = tx(amount=129.9)
    assert client.post("/v1/transactions", json=body, headers=SCORER).status_code == 200
    record = client.get(f"/v1/transactions/{body['transaction_id']}", headers=REVIEWER).json()
    assert record["transaction"]["amount"] == 129.9
