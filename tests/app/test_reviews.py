"""The review queue on the real stack: opened with its record, worked by analysts, verdicts
learned once as review labels; scopes and refusals."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.conftest import ADMIN, ALICE, BOB, SCORER, analyst_settings, fetchval, tx

PAN = "4111111111111111"


@pytest.fixture
def client(fresh_database: str, api_redis_url: str) -> Iterator[TestClient]:
    settings = analyst_settings(fresh_database, api_redis_url)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def _scored(client: TestClient, body: dict[str, Any] | None = None, **overrides: Any) -> Any:
    answer = client.post("/v1/transactions", json=body or tx(**overrides), headers=SCORER)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["decision"] == "review"
    return body


def _learned_review_labels(client: TestClient, transaction_id: str) -> int:
    return int(
        fetchval(
            client,
            "SELECT count(*) FROM learn_log g JOIN labels l ON l.seq = g.label_seq"
            " WHERE g.transaction_id = $1 AND l.source = 'review'",
            transaction_id,
        )
    )


def test_scopes(client: TestClient) -> None:
    assert client.get("/v1/reviews", headers=SCORER).status_code == 403
    assert client.get("/v1/reviews", headers=ADMIN).status_code == 403  # admin is not review
    assert client.get("/v1/lists", headers=ALICE).status_code == 403
    assert client.post("/v1/transactions", json=tx(), headers=ALICE).status_code == 403
    assert client.get("/v1/reviews").status_code == 401
    assert client.get("/v1/reviews", headers=ALICE).status_code == 200


def test_an_item_opens_with_its_record_and_shows_what_was_scored(client: TestClient) -> None:
    sent = tx(amount=250.0, country="DE", merchant_id="m_rev")
    scored = _scored(client, sent)
    again = client.post("/v1/transactions", json=tx(), headers=SCORER)  # another, opened too
    assert again.status_code == 200
    tx_id = scored["transaction_id"]
    items = client.get("/v1/reviews", headers=ALICE).json()["items"]
    assert len(items) == 2
    item = next(i for i in items if i["transaction_id"] == tx_id)
    assert (item["amount"], item["currency"], item["country"]) == (250, "EUR", "DE")
    assert (item["merchant_id"], item["channel"], item["card_id"]) == ("m_rev", "ecom", "card_1")
    assert item["score"] == scored["score"] and item["decision"] == "review"
    assert item["reasons"] == scored["reasons"]
    names = [s["name"] for s in item["scores"]]
    assert names == [scored["model"]["name"], *(s["name"] for s in scored["shadow"])]
    stored = client.get(f"/v1/transactions/{tx_id}", headers=SCORER).json()
    assert item["features"] == stored["features"]
    assert item["verdict"] is None and item["opened_at"]
    assert client.get(f"/v1/reviews/{tx_id}", headers=ALICE).json() == item
    # a replay stores nothing new and opens nothing new
    assert _scored(client, sent)["replayed"] is True
    assert fetchval(client, "SELECT count(*) FROM review_queue") == 2


def test_a_fraud_verdict_is_learned_once_and_a_second_verdict_is_refused(
    client: TestClient,
) -> None:
    tx_id = _scored(client)["transaction_id"]
    learned_before = _learned(client)
    answer = client.post(
        f"/v1/reviews/{tx_id}",
        json={"verdict": "fraud", "note": "cardholder denies"},
        headers=ALICE,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["label"] == "received"
    assert (body["item"]["verdict"], body["item"]["analyst"]) == ("fraud", "alice")
    second = client.post(f"/v1/reviews/{tx_id}", json={"verdict": "legitimate"}, headers=BOB)
    assert second.status_code == 409
    assert (second.json()["verdict"], second.json()["analyst"]) == ("fraud", "alice")
    assert second.json()["decided_at"] == body["item"]["decided_at"]
    for _ in range(200):  # the leading learner in this process claims it
        if _learned_review_labels(client, tx_id):
            break
        time.sleep(0.05)
    assert _learned_review_labels(client, tx_id) == 1
    assert fetchval(client, "SELECT count(*) FROM labels WHERE transaction_id = $1", tx_id) == 1
    assert _learned(client) == learned_before + 1
    assert client.get(f"/v1/transactions/{tx_id}", headers=SCORER).json()["label"] is True
    assert client.get("/v1/reviews", headers=ALICE).json()["items"] == []  # closed
    closed = client.get(f"/v1/reviews/{tx_id}", headers=BOB).json()
    assert (closed["verdict"], closed["note"]) == ("fraud", "cardholder denies")
    metrics = client.get("/metrics").text  # counted once, for the analyst who gave it
    assert 'riverguard_review_verdicts_total{analyst="alice",verdict="fraud"} 1.0' in metrics
    assert 'riverguard_review_verdicts_total{analyst="bob",verdict="legitimate"} 0.0' in metrics


def _learned(client: TestClient) -> int:
    models = client.get("/v1/models", headers=SCORER).json()["models"]
    return int(models[0]["learned"])


def test_unsure_closes_without_a_label_and_legitimate_teaches_not_fraud(
    client: TestClient,
) -> None:
    unsure = _scored(client)["transaction_id"]
    legit = _scored(client)["transaction_id"]
    answer = client.post(f"/v1/reviews/{unsure}", json={"verdict": "unsure"}, headers=ALICE)
    assert answer.status_code == 200 and answer.json()["label"] is None
    client.post(f"/v1/reviews/{legit}", json={"verdict": "legitimate"}, headers=ALICE)
    assert fetchval(client, "SELECT count(*) FROM labels WHERE transaction_id = $1", unsure) == 0
    fraud = fetchval(client, "SELECT is_fraud FROM labels WHERE transaction_id = $1", legit)
    assert fraud is False
    assert client.get(f"/v1/reviews/{unsure}", headers=ALICE).json()["verdict"] == "unsure"


def test_a_label_is_never_known_before_its_transaction(client: TestClient) -> None:
    ahead = datetime.now(UTC) + timedelta(seconds=200)  # within the future-skew bound
    tx_id = _scored(client, timestamp=ahead.isoformat())["transaction_id"]
    client.post(f"/v1/reviews/{tx_id}", json={"verdict": "fraud"}, headers=ALICE)
    labeled_at = fetchval(client, "SELECT labeled_at FROM labels WHERE transaction_id = $1", tx_id)
    assert labeled_at == ahead


def test_queue_order_filters_and_gauges(client: TestClient) -> None:
    small = _scored(client, amount=5.0)["transaction_id"]
    big = _scored(client, amount=5000.0)["transaction_id"]

    def ids(**params: Any) -> list[str]:
        answer = client.get("/v1/reviews", params=params, headers=ALICE)
        assert answer.status_code == 200, answer.text
        return [i["transaction_id"] for i in answer.json()["items"]]

    assert ids(order="age") == [small, big]
    assert set(ids()) == {small, big}
    scores = [i["score"] for i in client.get("/v1/reviews", headers=ALICE).json()["items"]]
    assert scores == sorted(scores, reverse=True)
    assert ids(min_amount=100) == [big]
    assert ids(max_amount=100) == [small]
    assert ids(older_than=3600) == []
    assert ids(older_than=0, order="age", limit=1) == [small]
    assert ids(reason="no_such_reason") == []
    # an untrained champion explains nothing: give the big one a stored reason
    reason = '[{"code": "amount_high", "feature": "amount", "value": 5000.0}]'
    fetchval(
        client, "UPDATE scored_transactions SET reasons = $2 WHERE transaction_id = $1", big, reason
    )
    assert ids(reason="amount_high") == [big]
    shown = client.get(f"/v1/reviews/{big}", headers=ALICE).json()["reasons"]
    assert [r["code"] for r in shown] == ["amount_high"]
    state = client.app.state.riverguard  # type: ignore[attr-defined]
    assert client.portal is not None
    client.portal.call(state.reviews.observe_queue)
    text = client.get("/metrics").text
    assert "riverguard_review_queue_open 2.0" in text
    assert "riverguard_review_queue_oldest_seconds" in text


def test_refusals_never_echo_the_input(client: TestClient) -> None:
    tx_id = _scored(client)["transaction_id"]
    note = client.post(
        f"/v1/reviews/{tx_id}", json={"verdict": "fraud", "note": f"pan {PAN}"}, headers=ALICE
    )
    assert note.status_code == 422 and PAN not in note.text
    long_note = {"verdict": "fraud", "note": "x" * 1001}
    assert client.post(f"/v1/reviews/{tx_id}", json=long_note, headers=ALICE).status_code == 422
    bad = client.post(f"/v1/reviews/{tx_id}", json={"verdict": "maybe"}, headers=ALICE)
    assert bad.status_code == 422 and "maybe" not in bad.text
    assert (
        client.post("/v1/reviews/tx-unknown", json={"verdict": "fraud"}, headers=ALICE).status_code
        == 404
    )
    assert client.get("/v1/reviews/tx-unknown", headers=ALICE).status_code == 404
    assert client.get("/v1/reviews", params={"min_amount": "nan"}, headers=ALICE).status_code == 422
    assert client.get(f"/v1/reviews/{tx_id}", headers=ALICE).json()["verdict"] is None
