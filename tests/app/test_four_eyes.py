"""Four-eyes on the real stack: a rule or list change by one key waits for a second key with
the approve scope and another name; approval applies it, rejection keeps it in the audit,
self-approval is refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.conftest import four_eyes_settings, tx

KEYS = (
    "alice-key=admin@alice,bob-key=admin|approve@bob,carol-key=approve@carol,score-key=score@shop"
)
ALICE, BOB = {"X-API-Key": "alice-key"}, {"X-API-Key": "bob-key"}
CAROL, SHOP = {"X-API-Key": "carol-key"}, {"X-API-Key": "score-key"}
RULE = {"id": "big_ecom", "expression": 'amount > 1000.0 && channel == "ecom"',
        "action": "decline", "enabled": False}  # fmt: skip
BLOCK = {"entity": "merchant", "value": "m_bad", "kind": "block", "reason": "mule shop"}


@pytest.fixture
def client(fresh_database: str, api_redis_url: str) -> Iterator[TestClient]:
    settings = four_eyes_settings(fresh_database, api_redis_url, KEYS)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def proposed(answer: Any) -> int:
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "pending"
    assert answer.headers["location"] == f"/v1/proposals/{answer.json()['id']}"
    return int(answer.json()["id"])


def approve(client: TestClient, proposal_id: int, who: dict[str, str]) -> Any:
    return client.post(f"/v1/proposals/{proposal_id}/approve", headers=who)


def test_one_key_cannot_enable_a_rule_alone(client: TestClient) -> None:
    created = proposed(client.post("/v1/rules", json=RULE, headers=ALICE))
    assert client.get("/v1/rules/big_ecom", headers=ALICE).status_code == 404
    assert approve(client, created, ALICE).status_code == 403  # alice lacks approve
    done = approve(client, created, BOB)
    assert done.status_code == 200 and done.json()["status"] == "approved"
    assert done.json()["decided_by"] == "bob"
    rule = client.get("/v1/rules/big_ecom", headers=ALICE).json()
    assert rule["enabled"] is False
    history = client.get("/v1/rules/big_ecom/history", headers=ALICE).json()["history"]
    assert history[-1]["changed_by"] == "alice"  # the change is its proposer's

    enable = {k: v for k, v in RULE.items() if k != "id"} | {"enabled": True}
    pending = client.put("/v1/rules/big_ecom", json=enable, headers=ALICE)
    enabling = proposed(pending)
    assert pending.json()["diff"] == {"enabled": [False, True]}
    assert pending.json()["backtest"]["rows_scanned"] >= 0
    assert client.get("/v1/rules/big_ecom", headers=ALICE).json()["enabled"] is False
    listed = client.get("/v1/proposals", headers=CAROL).json()["proposals"]
    assert [p["id"] for p in listed] == [enabling]
    assert approve(client, enabling, CAROL).json()["status"] == "approved"
    assert client.get("/v1/rules/big_ecom", headers=ALICE).json()["enabled"] is True
    again = approve(client, enabling, BOB)
    assert again.status_code == 409 and again.json()["decided_by"] == "carol"


def test_self_approval_is_refused(client: TestClient) -> None:
    own = proposed(client.post("/v1/rules", json=RULE, headers=BOB))
    refused = approve(client, own, BOB)
    assert refused.status_code == 403 and "self-approval refused" in refused.json()["detail"]
    assert client.get(f"/v1/proposals/{own}", headers=BOB).json()["status"] == "pending"
    assert client.get("/v1/rules/big_ecom", headers=BOB).status_code == 404


def test_one_key_cannot_add_a_block_entry_alone(client: TestClient) -> None:
    adding = proposed(client.post("/v1/lists", json=BLOCK, headers=ALICE))
    assert client.get("/v1/lists", headers=ALICE).json()["entries"] == []
    scored = client.post("/v1/transactions", json=tx(merchant_id="m_bad"), headers=SHOP)
    assert scored.json()["decision"] != "decline" or scored.json()["reasons"][0]["code"] != (
        "list_block"
    )
    assert approve(client, adding, CAROL).json()["status"] == "approved"
    entries = client.get("/v1/lists", headers=ALICE).json()["entries"]
    assert [(e["value"], e["created_by"]) for e in entries] == [("m_bad", "alice")]
    blocked = client.post("/v1/transactions", json=tx(merchant_id="m_bad"), headers=SHOP)
    assert blocked.json()["decision"] == "decline"
    removing = client.delete("/v1/lists/merchant/block/m_bad", headers=ALICE)
    assert removing.json()["diff"] == {
        "entity": ["merchant", None], "kind": ["block", None], "value": ["m_bad", None]
    }  # fmt: skip
    assert approve(client, proposed(removing), BOB).json()["status"] == "approved"
    assert client.get("/v1/lists", headers=ALICE).json()["entries"] == []


def test_a_rejection_is_kept_and_changes_nothing(client: TestClient) -> None:
    adding = proposed(client.post("/v1/lists", json=BLOCK, headers=ALICE))
    rejected = client.post(
        f"/v1/proposals/{adding}/reject", json={"reason": "wrong shop"}, headers=CAROL
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert client.get("/v1/lists", headers=ALICE).json()["entries"] == []
    kept = client.get("/v1/proposals", params={"status": "rejected"}, headers=CAROL).json()
    assert [(p["id"], p["decided_by"], p["outcome"]) for p in kept["proposals"]] == [
        (adding, "carol", "wrong shop")
    ]
    assert approve(client, adding, BOB).status_code == 409


def test_a_change_that_no_longer_applies_fails_visibly(client: TestClient) -> None:
    first = proposed(client.post("/v1/lists", json=BLOCK, headers=ALICE))
    second = proposed(client.post("/v1/lists", json=BLOCK, headers=ALICE))
    assert approve(client, first, BOB).json()["status"] == "approved"
    failed = approve(client, second, BOB).json()
    assert failed["status"] == "failed" and "exists now" in failed["outcome"]


def test_scopes_and_validation(client: TestClient) -> None:
    assert client.get("/v1/proposals").status_code == 401
    assert client.get("/v1/proposals", headers=ALICE).status_code == 403
    assert client.get("/v1/proposals", headers=SHOP).status_code == 403
    assert client.get("/v1/proposals/999", headers=CAROL).status_code == 404
    assert approve(client, 999, CAROL).status_code == 404
    # an invalid rule is a 422 at proposal time, not a proposal
    bad = client.post("/v1/rules", json=RULE | {"expression": "amount >> 1"}, headers=ALICE)
    assert bad.status_code == 422
    assert client.put("/v1/rules/nope", json={"expression": "amount > 1.0", "action": "review"},
                      headers=ALICE).status_code == 404  # fmt: skip
    assert client.post("/v1/lists", json=BLOCK | {"entity": "card", "value": "4111111111111111"},
                       headers=ALICE).status_code == 422  # fmt: skip
