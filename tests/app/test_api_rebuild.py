"""Redis loses everything; the rebuild from Postgres restores identical features."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from app.tools.rebuild import rebuild_features
from tests.app.conftest import ADMIN, LABELER, SCORER, label, tx

AT = {"at": (datetime.now(UTC) + timedelta(minutes=30)).isoformat()}


def test_flush_then_rebuild_gives_identical_features(client: TestClient) -> None:
    ids = []
    for i in range(60):
        body = tx(card_id=f"card_{i % 6}", merchant_id=f"m_{i % 4}", amount=5 + 3 * i)
        assert client.post("/v1/transactions", json=body, headers=SCORER).status_code == 200
        ids.append(body["transaction_id"])
    for tx_id in ids[::7]:
        assert client.post("/v1/labels", json=label(tx_id), headers=LABELER).status_code == 202
    cards = [f"card_{i}" for i in range(6)]
    before = {
        c: client.get(f"/v1/cards/{c}/features", params=AT, headers=ADMIN).json() for c in cards
    }
    assert before["card_0"]["features"]["card_count_30d"] == 10
    assert any(b["features"]["card_fraud_30d"] > 0 for b in before.values())

    state = client.app.state.riverguard  # type: ignore[attr-defined]
    redis = state.features.client  # the service's own Redis client
    assert client.portal is not None
    client.portal.call(redis.flushdb)
    emptied = client.get("/v1/cards/card_0/features", headers=ADMIN).json()["features"]
    assert emptied["card_count_30d"] == 0

    stats = client.portal.call(
        rebuild_features,
        redis,
        state.records,
        state.settings.scoring.lateness_days,
    )
    assert stats.transactions == 60
    assert stats.labels == len(ids[::7])
    after = {
        c: client.get(f"/v1/cards/{c}/features", params=AT, headers=ADMIN).json() for c in cards
    }
    assert after == before
