"""The decision layer wired end to end: lists, then rules, then warm-up, then the model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.app.conftest import ADMIN, tx

REVIEWER = {"X-API-Key": "review-key"}
KEYS = "admin-key=score|label|admin|review@ops,review-key=review@ana"


@pytest.fixture
def service(fresh_database: str, api_redis_url: str) -> Iterator[TestClient]:
    """A fresh service: its champion is warming up (the default 1,000 labels)."""
    settings = Settings(
        database_url=fresh_database, redis_url=api_redis_url, api_keys=KEYS, kafka_bootstrap=None
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _score(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/transactions", json=tx(**fields), headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _rule(client: TestClient, rule_id: str, expression: str, action: str, priority: int) -> None:
    body = {"id": rule_id, "name": rule_id, "expression": expression, "action": action,
            "priority": priority, "enabled": True}  # fmt: skip
    response = client.post("/v1/rules", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text


def test_a_fresh_service_approves_with_the_warm_up_reason(service: TestClient) -> None:
    answer = _score(service, amount=9000)
    assert (answer["decision"], answer["decided_by"]) == ("approve", "warmup")
    assert answer["reasons"][0]["code"] == "model_warming_up"


def test_a_rule_decides_during_warm_up_says_so_and_opens_a_review(service: TestClient) -> None:
    _rule(service, "big", "amount > 5000.0", "review", 10)
    _rule(service, "foreign", 'country != "FR"', "reason", 20)
    answer = _score(service, amount=6000, country="DE")
    assert (answer["decision"], answer["decided_by"], answer["rule_id"]) == (
        "review",
        "rule",
        "big",
    )
    assert 0 <= answer["score"] <= 1  # the model's score is kept beside the rule's decision
    codes = {(r["code"], r["feature"]) for r in answer["reasons"]}
    assert {("rule_big", "rule:big"), ("rule_foreign", "rule:foreign")} <= codes
    stored = service.get(f"/v1/transactions/{answer['transaction_id']}", headers=ADMIN).json()
    assert stored["score"] == answer  # the stored answer, rebuilt from the compact columns
    queue = service.get("/v1/reviews", headers=REVIEWER).json()
    assert answer["transaction_id"] in [item["transaction_id"] for item in queue["items"]]
    small = _score(service, amount=10, country="DE")  # the reason rule alone decides nothing
    assert (small["decision"], small["decided_by"]) == ("approve", "warmup")
    assert "rule_foreign" in [r["code"] for r in small["reasons"]]


def test_lists_override_rules_and_the_model_and_say_which_entry(service: TestClient) -> None:
    _rule(service, "everything", "amount > 0.0", "decline", 1)
    entry = {"entity": "merchant", "value": "merch_bad", "kind": "block", "reason": "test"}
    assert service.post("/v1/lists", json=entry, headers=ADMIN).status_code == 201
    entry = {"entity": "card", "value": "card_vip", "kind": "allow", "reason": "test"}
    assert service.post("/v1/lists", json=entry, headers=ADMIN).status_code == 201
    blocked = _score(service, merchant_id="merch_bad", amount=5)
    assert (blocked["decision"], blocked["decided_by"]) == ("decline", "list")
    assert blocked["reasons"][0] == {"code": "list_block", "feature": "merchant_id", "value": 1.0}
    allowed = _score(service, card_id="card_vip", amount=5)
    assert (allowed["decision"], allowed["decided_by"]) == ("approve", "list")
    both = _score(service, card_id="card_vip", merchant_id="merch_bad", amount=5)
    assert both["decision"] == "decline"  # a block entry wins over an allow entry
    ruled = _score(service, amount=5)
    assert (ruled["decision"], ruled["decided_by"]) == ("decline", "rule")
    replay = service.get(f"/v1/transactions/{blocked['transaction_id']}", headers=ADMIN).json()
    assert replay["score"] == blocked
    metrics = service.get("/metrics").text
    assert 'riverguard_list_hits_total{entity="merchant",kind="block"} 2.0' in metrics
    assert 'riverguard_decided_by_total{layer="list"} 3.0' in metrics
