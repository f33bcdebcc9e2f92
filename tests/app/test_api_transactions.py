"""POST/GET /v1/transactions over the real stack: scoring, replay, conflict, bad input."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import ADMIN, LABELER, SCORER, tx

PAN = "4111111111111111"


def test_score_returns_the_documented_shape(client: TestClient) -> None:
    body = tx()
    response = client.post("/v1/transactions", json=body, headers=SCORER)
    assert response.status_code == 200, response.text
    score = response.json()
    assert score["transaction_id"] == body["transaction_id"]
    assert 0.0 <= score["score"] <= 1.0
    assert score["decision"] in {"approve", "review", "decline"}
    assert score["model"]["name"] and score["model"]["version"]
    assert len(score["shadow"]) >= 1
    assert all(0.0 <= s["score"] <= 1.0 for s in score["shadow"])
    assert score["replayed"] is False
    assert isinstance(score["reasons"], list)


def test_same_id_same_payload_replays_and_leaves_features_untouched(client: TestClient) -> None:
    body = tx(card_id="card_replay")
    first = client.post("/v1/transactions", json=body, headers=SCORER).json()
    at = {"at": (datetime.now(UTC) + timedelta(minutes=30)).isoformat()}
    before = client.get("/v1/cards/card_replay/features", params=at, headers=ADMIN).json()
    again = client.post("/v1/transactions", json=body, headers=SCORER)
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["score"] == first["score"]
    assert again.json()["scored_at"] == first["scored_at"]
    after = client.get("/v1/cards/card_replay/features", params=at, headers=ADMIN).json()
    assert after == before


def test_same_id_different_payload_is_a_conflict(client: TestClient) -> None:
    body = tx()
    assert client.post("/v1/transactions", json=body, headers=SCORER).status_code == 200
    changed = {**body, "amount": 999.0}
    response = client.post("/v1/transactions", json=changed, headers=SCORER)
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")


def test_stored_record_has_features_scores_and_label(client: TestClient) -> None:
    body = tx()
    client.post("/v1/transactions", json=body, headers=SCORER)
    client.post("/v1/labels", json=_label(body["transaction_id"]), headers=LABELER)
    record = client.get(f"/v1/transactions/{body['transaction_id']}", headers=SCORER).json()
    assert record["transaction"]["transaction_id"] == body["transaction_id"]
    assert record["features"]["amount"] == pytest.approx(42.5)
    assert record["transaction"]["amount"] == body["amount"]  # a number, as POST takes it
    assert {s["name"] for s in record["scores"]} >= {record["score"]["model"]["name"]}
    assert record["decision"] in {"approve", "review", "decline"}
    assert record["label"] is True


def test_unknown_transaction_is_404(client: TestClient) -> None:
    assert client.get("/v1/transactions/nope", headers=SCORER).status_code == 404


def _label(transaction_id: str) -> dict[str, Any]:
    from tests.app.conftest import label

    return label(transaction_id)


# ---- the bad-input table (docs/api.md), REST column ----------------------------------------
RAW_400 = [b"not json", b"", b"[1, 2]", b"null", b'{"a": 1, "a": 2}']


@pytest.mark.parametrize("raw", RAW_400)
def test_unparseable_bodies_are_400_problems(client: TestClient, raw: bytes) -> None:
    response = client.post(
        "/v1/transactions",
        content=raw,
        headers={**SCORER, "content-type": "application/json"},
    )
    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith("application/problem+json")


BAD_FIELDS: list[tuple[str, Any]] = [
    ("amount", True),
    ("amount", "12.5"),
    ("amount", -5),
    ("amount", 0),
    ("amount", 1e300),
    ("currency", "XXX"),
    ("country", "ZZ"),
    ("lat", 200),
    ("lon", -181),
    ("channel", "fax"),
    ("merchant_category", "12a4"),
    ("transaction_id", "x" * 10_000),
    ("card_id", "card\u0000x"),
    ("timestamp", "2026-01-01T10:00:00"),
    ("timestamp", 1767261600),
    ("timestamp", "9999-01-01T00:00:00Z"),
    ("timestamp", "1999-12-31T23:59:59Z"),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_bad_fields_are_422_without_echo(client: TestClient, field: str, value: Any) -> None:
    response = client.post("/v1/transactions", json=tx(**{field: value}), headers=SCORER)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["status"] == 422
    assert any(e["loc"][:2] == ["body", field] for e in problem["errors"]), problem
    assert all(e["msg"] for e in problem["errors"]), problem
    if isinstance(value, str) and len(value) > 3:
        assert value not in response.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_amounts_are_rejected(client: TestClient, literal: str) -> None:
    text = json.dumps(tx(amount=1)).replace('"amount": 1', f'"amount": {literal}')
    response = client.post(
        "/v1/transactions", content=text, headers={**SCORER, "content-type": "application/json"}
    )
    assert response.status_code == 422


def test_missing_field_and_extra_field_are_422(client: TestClient) -> None:
    body = tx()
    del body["currency"]
    assert client.post("/v1/transactions", json=body, headers=SCORER).status_code == 422
    extra = tx(note="hello")
    assert client.post("/v1/transactions", json=extra, headers=SCORER).status_code == 422


def test_lone_surrogate_is_422(client: TestClient) -> None:
    text = json.dumps(tx(card_id="PLACEHOLDER")).replace("PLACEHOLDER", "\\ud800abc")
    response = client.post(
        "/v1/transactions", content=text, headers={**SCORER, "content-type": "application/json"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize("field", ["card_id", "customer_id", "device_id"])
def test_pan_in_a_card_like_field_is_rejected_and_never_echoed_or_stored(
    client: TestClient, fresh_database: str, caplog: pytest.LogCaptureFixture, field: str
) -> None:
    body = tx(**{field: PAN})
    response = client.post("/v1/transactions", json=body, headers=SCORER)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert (error["loc"], error["type"]) == (["body", field], "pan")
    assert "card number" in error["msg"]
    assert PAN not in response.text
    assert (
        client.get(f"/v1/transactions/{body['transaction_id']}", headers=SCORER).status_code == 404
    )
    embedded = tx(**{field: f"tok_{PAN}"})
    assert client.post("/v1/transactions", json=embedded, headers=SCORER).status_code == 422
    assert client.post("/v1/transactions", json=tx(), headers=SCORER).status_code == 200
    stored = _database_text(fresh_database)
    assert "card_1" in stored  # the dump holds the accepted transaction: the scan is real
    assert PAN not in stored
    assert PAN not in caplog.text


def test_luhn_valid_merchant_and_transaction_ids_are_scored(client: TestClient) -> None:
    merchant_id = "100000000000009"  # a 15-digit acquirer MID that passes Luhn
    transaction_id = "bb-44309474983643b9"  # random hex with a Luhn-valid 14-digit run
    body = tx(merchant_id=merchant_id, transaction_id=transaction_id)
    response = client.post("/v1/transactions", json=body, headers=SCORER)
    assert response.status_code == 200, response.text
    assert response.json()["transaction_id"] == transaction_id
    record = client.get(f"/v1/transactions/{transaction_id}", headers=SCORER).json()
    assert record["transaction"]["merchant_id"] == merchant_id
    labeled = client.post("/v1/labels", json=_label(transaction_id), headers=LABELER)
    assert labeled.status_code == 202, labeled.text


def _database_text(url: str) -> str:
    """Every row of every table of the service's schema, as text."""

    async def dump() -> str:
        conn = await asyncpg.connect(url)
        try:
            tables = await conn.fetch(
                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS name"
                " FROM information_schema.tables"
                " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                " AND table_type = 'BASE TABLE'"
            )
            parts = [
                await conn.fetchval(
                    f"SELECT coalesce(string_agg(t::text, ''), '') FROM {r['name']} t"
                )
                for r in tables
            ]
            return "".join(parts)
        finally:
            await conn.close()

    return asyncio.run(dump())


def test_body_over_the_limit_is_413_with_and_without_content_length(client: TestClient) -> None:
    big = b'{"transaction_id": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    response = client.post(
        "/v1/transactions", content=big, headers={**SCORER, "content-type": "application/json"}
    )
    assert response.status_code == 413

    def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 65536

    streamed = client.post(
        "/v1/transactions", content=chunks(), headers={**SCORER, "content-type": "application/json"}
    )
    assert streamed.status_code == 413


def test_a_fresh_service_approves_while_its_champion_warms_up(client: TestClient) -> None:
    answers = [client.post("/v1/transactions", json=tx(), headers=SCORER).json() for _ in range(5)]
    for answer in answers:
        assert answer["decision"] == "approve" and answer["decided_by"] == "warmup"
        assert answer["reasons"][0]["code"] == "model_warming_up"
        assert 0.0 <= answer["score"] <= 1.0  # reported beside the decision
    metrics = client.get("/metrics").text
    assert 'riverguard_decided_by_total{layer="warmup"} 5.0' in metrics
