"""Redis loses everything; the rebuild from Postgres restores identical features."""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from app.tools import rebuild as rebuild_tool
from app.tools.rebuild import rebuild_features
from features import rebuild as feature_rebuild
from features import store as feature_store
from features.schema import Transaction
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


def test_a_rebuilt_state_scores_new_transactions_as_the_live_one(client: TestClient) -> None:
    """Every feature of a new transaction, the amount- and merchant-relative ones too, is the
    same on a state rebuilt from Postgres (on a prefix of its own) as on the live state."""
    for i in range(40):
        body = tx(card_id=f"card_{i % 5}", merchant_id=f"m_{i % 3}", amount=7 + 5 * i)
        assert client.post("/v1/transactions", json=body, headers=SCORER).status_code == 200
    state = client.app.state.riverguard  # type: ignore[attr-defined]
    live = state.features
    rebuilt = feature_store.RedisFeatureStore(
        live.client, dataclasses.replace(live.config, key_prefix="rebuilt")
    )
    assert client.portal is not None
    client.portal.call(rebuilt.load_scripts)
    history = rebuild_tool.events(state.records)
    stats = client.portal.call(functools.partial(feature_rebuild.rebuild, rebuilt, history))
    assert stats.transactions == 40
    now = datetime.now(UTC)
    probes = [
        Transaction.model_validate(
            tx(card_id=f"card_{i}", merchant_id=f"m_{i % 4}", amount=300, timestamp=now)
        )
        for i in range(6)
    ]
    want = client.portal.call(live.score_batch, probes)
    got = client.portal.call(rebuilt.score_batch, probes)
    assert [g.features for g in got] == [w.features for w in want]
    assert any(w.features["card_seconds_since_merchant_30d"] > 0 for w in want)
    assert any(w.features["card_count_1d_to_usual_day"] > 0 for w in want)
