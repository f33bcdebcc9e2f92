"""Auth, labels (learned, duplicate, parked, relabeled), models, promotion, cards."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from tests.app.conftest import ADMIN, LABELER, SCORER, label, tx


def test_missing_or_unknown_key_is_401_and_wrong_scope_403(client: TestClient) -> None:
    assert client.post("/v1/transactions", json=tx()).status_code == 401
    assert (
        client.post("/v1/transactions", json=tx(), headers={"X-API-Key": "nope"}).status_code == 401
    )
    assert client.post("/v1/transactions", json=tx(), headers=LABELER).status_code == 403
    assert client.post("/v1/labels", json=label("x"), headers=SCORER).status_code == 403
    promote = client.post("/v1/models/logreg/promote", json={"reason": "x"}, headers=SCORER)
    assert promote.status_code == 403
    assert client.get("/v1/models", headers=SCORER).status_code == 200


def test_label_statuses(client: TestClient) -> None:
    body = tx()
    tx_id = body["transaction_id"]
    client.post("/v1/transactions", json=body, headers=SCORER)
    first = client.post("/v1/labels", json=label(tx_id, True), headers=LABELER)
    assert first.status_code == 202
    assert first.json()["status"] == "learned"
    again = client.post("/v1/labels", json=label(tx_id, True), headers=LABELER)
    assert again.json()["status"] == "duplicate"
    flipped = client.post("/v1/labels", json=label(tx_id, False), headers=LABELER)
    assert flipped.json()["status"] == "relabeled"
    assert client.get(f"/v1/transactions/{tx_id}", headers=SCORER).json()["label"] is False


def test_parked_label_is_learned_when_the_transaction_arrives(client: TestClient) -> None:
    body = tx()
    parked = client.post("/v1/labels", json=label(body["transaction_id"]), headers=LABELER)
    assert parked.status_code == 202
    assert parked.json()["status"] == "parked"
    learned_before = _learned(client)
    client.post("/v1/transactions", json=body, headers=SCORER)
    for _ in range(100):
        if _learned(client) > learned_before:
            break
        time.sleep(0.05)
    assert _learned(client) == learned_before + 1
    assert client.get(f"/v1/transactions/{body['transaction_id']}", headers=SCORER).json()["label"]


def _learned(client: TestClient) -> int:
    models = client.get("/v1/models", headers=SCORER).json()["models"]
    return int(models[0]["learned"])


def test_bad_labels_are_rejected(client: TestClient) -> None:
    assert (
        client.post("/v1/labels", json={**label("x"), "is_fraud": 1}, headers=LABELER).status_code
        == 422
    )
    assert (
        client.post(
            "/v1/labels", json={**label("x"), "source": "psychic"}, headers=LABELER
        ).status_code
        == 422
    )
    naive = {**label("x"), "labeled_at": "2026-01-01T00:00:00"}
    assert client.post("/v1/labels", json=naive, headers=LABELER).status_code == 422


def test_models_listing_and_promotion_audit(client: TestClient) -> None:
    listing = client.get("/v1/models", headers=SCORER).json()["models"]
    roles = {m["name"]: m["role"] for m in listing}
    assert list(roles.values()).count("champion") == 1
    challenger = next(name for name, role in roles.items() if role == "challenger")
    champion = next(name for name, role in roles.items() if role == "champion")
    record = client.post(
        f"/v1/models/{challenger}/promote", json={"reason": "better AP"}, headers=ADMIN
    )
    assert record.status_code == 200, record.text
    audit = record.json()
    assert (audit["from_model"], audit["to_model"], audit["reason"]) == (
        champion,
        challenger,
        "better AP",
    )
    after = {
        m["name"]: m["role"] for m in client.get("/v1/models", headers=SCORER).json()["models"]
    }
    assert after[challenger] == "champion" and after[champion] == "challenger"
    assert (
        client.post("/v1/transactions", json=tx(), headers=SCORER).json()["model"]["name"]
        == challenger
    )
    history = client.get("/v1/models/promotions", headers=SCORER).json()["promotions"]
    assert [h["to_model"] for h in history] == [challenger]
    assert (
        client.post("/v1/models/ghost/promote", json={"reason": "x"}, headers=ADMIN).status_code
        == 404
    )
    again = client.post(f"/v1/models/{challenger}/promote", json={"reason": "x"}, headers=ADMIN)
    assert again.status_code == 409


def test_card_features_reflect_history(client: TestClient) -> None:
    for amount in (10, 20, 30):
        client.post("/v1/transactions", json=tx(card_id="card_dbg", amount=amount), headers=SCORER)
    response = client.get("/v1/cards/card_dbg/features", headers=ADMIN)
    assert response.status_code == 200
    features = response.json()["features"]
    assert features["card_count_30d"] == 3
    assert client.get("/v1/cards/4111111111111111/features", headers=ADMIN).status_code == 422


def test_health_ready_metrics(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    client.post("/v1/transactions", json=tx(), headers=SCORER)
    text = client.get("/metrics").text
    assert "riverguard_inputs_total" in text
    assert "riverguard_model_roc_auc" in text or "riverguard_model_labels" in text


def test_guarded_inputs_and_model_faults_are_counted_in_metrics(client: TestClient) -> None:
    pool = client.app.state.riverguard.learner.pool  # type: ignore[attr-defined]
    pool.score({"amount": float("nan"), "card_count_1d": 1e300, "label": "x"})
    champion = pool.members[pool.champion]

    def broken(x: object) -> float:
        raise RuntimeError("model fault")

    # the pool falls back and counts it (a stacked champion scores through predict_parts)
    champion.model.predict_proba_one = broken
    if hasattr(champion.model, "predict_parts"):
        champion.model.predict_parts = broken
    assert pool.score({"amount": 10.0})[0].fallback
    text = client.get("/metrics").text
    assert 'riverguard_feature_values_guarded_total{kind="dropped"} 2.0' in text
    assert 'riverguard_feature_values_guarded_total{kind="clipped"} 1.0' in text
    fault = (
        f'riverguard_model_faults_total{{kind="predict_errors",model="{pool.champion}",'
        f'role="champion"}} 1.0'
    )
    assert fault in text
