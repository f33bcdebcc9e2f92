"""Concurrent POST /v1/transactions over the real stack: requests in flight together share a
batch, and each still gets its own answer (replay, conflict, bad body, PAN), durably."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx
from fastapi.testclient import TestClient

from app.core.scoring import Outcome
from features.schema import Transaction
from tests.app.conftest import SCORER, tx

PAN = "4111111111111111"


def test_batch_mates_each_get_their_own_answer_and_the_good_ones_are_stored_once(
    client: TestClient, fresh_database: str
) -> None:
    stored = tx(card_id="card_stored")
    first = client.post("/v1/transactions", json=stored, headers=SCORER)
    assert first.status_code == 200
    twin, rival = tx(card_id="card_twin"), tx(card_id="card_rival")
    requests: list[tuple[str, bytes]] = [
        ("replay", json.dumps(stored).encode()),
        ("conflict", json.dumps({**stored, "amount": 1.5}).encode()),
        ("bad body", b'{"transaction_id": "x", "amount": NaN}'),
        ("pan", json.dumps(tx(card_id=PAN)).encode()),
        ("twin", json.dumps(twin).encode()),
        ("twin again", json.dumps(twin).encode()),
        ("rival", json.dumps(rival).encode()),
        ("rival changed", json.dumps({**rival, "amount": 7.0}).encode()),
        *((f"fresh {i}", json.dumps(tx(card_id=f"card_{i}")).encode()) for i in range(6)),
    ]
    state = client.app.state.riverguard  # type: ignore[attr-defined]
    batches: list[int] = []
    score = state.service.score

    async def watched(txs: Sequence[Transaction], path: Any) -> list[Outcome]:
        batches.append(len(txs))
        outcomes: list[Outcome] = await score(txs, path)
        return outcomes

    state.service.score = watched
    assert client.portal is not None
    answers = client.portal.call(_post_all, client.app, requests, fresh_database)
    state.service.score = score
    status = {name: code for name, (code, _, _) in answers.items()}
    body = {name: text for name, (_, text, _) in answers.items()}
    assert max(batches) > 1  # the requests did share batches
    assert status["replay"] == 200 and json.loads(body["replay"])["replayed"] is True
    assert json.loads(body["replay"])["score"] == first.json()["score"]
    assert status["conflict"] == 409
    assert status["bad body"] in (400, 422) and status["pan"] == 422
    assert PAN not in body["pan"]
    assert sorted([status["twin"], status["twin again"]]) == [200, 200]
    replays = [json.loads(body[n])["replayed"] for n in ("twin", "twin again")]
    assert sorted(replays) == [False, True]
    assert sorted([status["rival"], status["rival changed"]]) == [200, 409]
    assert all(status[f"fresh {i}"] == 200 for i in range(6))
    for name, (code, _, durable) in answers.items():
        assert durable == (code == 200), name  # every 200 was in Postgres when it was answered
    rows = client.portal.call(_stored_counts, fresh_database)
    good = [stored, twin, rival] + [json.loads(b) for n, b in requests if n.startswith("fresh")]
    assert rows == {t["transaction_id"]: 1 for t in good}


async def _post_all(
    app: Any, requests: list[tuple[str, bytes]], database_url: str
) -> dict[str, tuple[int, str, bool]]:
    """Every request at once; each answer with whether its id was in Postgres on arrival."""
    conn = await asyncpg.connect(database_url)
    transport = httpx.ASGITransport(app=app)
    headers = {**SCORER, "content-type": "application/json"}
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            lock = asyncio.Lock()  # one connection: the durability checks take turns

            async def checked(body: bytes) -> tuple[int, str, bool]:
                response = await http.post("/v1/transactions", content=body, headers=headers)
                tx_id = json.loads(response.text).get("transaction_id")
                async with lock:
                    found = tx_id is not None and await conn.fetchval(
                        "SELECT count(*) FROM transaction_ids WHERE transaction_id = $1", tx_id
                    )
                return response.status_code, response.text, bool(found)

            results = await asyncio.gather(*(checked(body) for _, body in requests))
    finally:
        await conn.close()
    return {name: result for (name, _), result in zip(requests, results, strict=True)}


async def _stored_counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT transaction_id, count(*) AS n FROM scored_transactions GROUP BY 1"
        )
    finally:
        await conn.close()
    return {row["transaction_id"]: row["n"] for row in rows}
