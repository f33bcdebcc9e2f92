"""A crash between the Redis feature update and the Postgres commit loses and doubles nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.testclient import TestClient

from tests.app.conftest import ADMIN, SCORER, tx


def test_failed_commit_then_retry_counts_the_transaction_once(client: TestClient) -> None:
    state = client.app.state.riverguard  # type: ignore[attr-defined]
    writer = state.service.writer
    real_flush = writer.flush
    failures = {"left": 1}

    async def flaky(records: Sequence[Any]) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionResetError("postgres went away mid-commit")
        return await real_flush(records)

    writer.flush = flaky
    body = tx(card_id="card_crash", amount=50)
    failed = client.post("/v1/transactions", json=body, headers=SCORER)
    assert failed.status_code == 503
    assert failed.headers["content-type"].startswith("application/problem+json")
    assert (
        client.get(f"/v1/transactions/{body['transaction_id']}", headers=SCORER).status_code == 404
    )

    retried = client.post("/v1/transactions", json=body, headers=SCORER)
    assert retried.status_code == 200, retried.text
    assert retried.json()["replayed"] is False
    features = client.get("/v1/cards/card_crash/features", headers=ADMIN).json()["features"]
    assert features["card_count_30d"] == 1
    assert features["card_sum_30d"] == 50

    later = client.post(
        "/v1/transactions", json=tx(card_id="card_crash", amount=10), headers=SCORER
    )
    assert later.status_code == 200
    stored = client.get(f"/v1/transactions/{later.json()['transaction_id']}", headers=SCORER).json()
    assert stored["features"]["card_count_30d"] == 1  # exactly one earlier transaction
