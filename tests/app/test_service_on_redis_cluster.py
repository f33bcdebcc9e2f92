"""The service on a three-node Valkey Cluster (RIVERGUARD_REDIS_CLUSTER=true): the client
factory builds a cluster client, and scoring, labels, card features and readiness work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from redis.asyncio import RedisCluster

from app import backends
from app.config import Settings
from app.main import create_app
from app.tools.embedded import EmbeddedStack
from tests.app.conftest import ADMIN, LABELER, SCORER, label, settings_for, tx

pytestmark = pytest.mark.servers


def _cluster_url(cluster: EmbeddedStack) -> str:
    url = cluster.urls().redis_url
    assert url is not None
    return url


async def test_the_cluster_setting_selects_the_cluster_client(
    cluster: EmbeddedStack, fresh_database: str
) -> None:
    url = _cluster_url(cluster)
    standalone = backends.redis_client(settings_for(fresh_database, url), url)
    clustered = backends.redis_client(settings_for(fresh_database, url, redis_cluster=True), url)
    try:
        assert not isinstance(standalone, RedisCluster)
        assert isinstance(clustered, RedisCluster)
        assert len(await clustered.cluster_nodes()) == 3
    finally:
        await standalone.aclose()
        await clustered.aclose()


def _score_all(settings: Settings, bodies: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Score every body, label one, replay one; the stored features of each, in order."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/readyz").status_code == 200
        for body in bodies[:12]:
            response = client.post("/v1/transactions", json=body, headers=SCORER)
            assert response.status_code == 200, response.text
        learned = client.post(
            "/v1/labels", json=label(bodies[3]["transaction_id"]), headers=LABELER
        )
        assert learned.status_code == 202, learned.text
        for body in [*bodies[12:], bodies[0]]:
            response = client.post("/v1/transactions", json=body, headers=SCORER)
            assert response.status_code == 200, response.text
        assert response.json()["replayed"] is True
        snapshots = [
            client.get(f"/v1/transactions/{b['transaction_id']}", headers=SCORER).json()
            for b in bodies
        ]
        at = {"at": bodies[-1]["timestamp"]}  # a fixed moment, not "now"
        card = client.get("/v1/cards/card_0/features", params=at, headers=ADMIN).json()
    return [s["features"] for s in snapshots] + [card["features"]]


def test_the_service_scores_on_a_cluster_as_on_one_node(
    cluster: EmbeddedStack, fresh_database: str, api_redis_url: str
) -> None:
    """The same transactions (ids apart: both services share one database) get the same
    features from a service on the cluster as from one on a single Valkey."""
    start = datetime.now(UTC) - timedelta(hours=3)
    bodies = [
        tx(card_id=f"card_{i % 6}", merchant_id=f"merch_{i % 4}", amount=10 + i,
           timestamp=(start + timedelta(minutes=5 * i)).isoformat())
        for i in range(24)
    ]  # fmt: skip
    on_one = _score_all(settings_for(fresh_database, api_redis_url), bodies)
    renamed = [{**b, "transaction_id": f"c{b['transaction_id']}"} for b in bodies]
    on_cluster = _score_all(
        settings_for(fresh_database, _cluster_url(cluster), redis_cluster=True), renamed
    )
    assert on_cluster == on_one
    assert on_one[-2]["card_count_1h"] > 0  # the stream builds history
    assert any(f["merchant_fraud_count_1d"] for f in on_one)  # and the label counts
    counts = []
    for url in cluster.redis_cluster_urls():
        with Redis.from_url(url) as node:
            counts.append(int(node.dbsize()))  # type: ignore[arg-type]
    assert all(count > 0 for count in counts), counts
