"""Cases on the real stack: alerts group per card, claims lock, notes, closes label each
transaction once, bulk close, the audit; scopes and refusals."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import CaseSettings, DecisionSettings, ScoringSettings
from app.main import create_app
from tests.app.conftest import ADMIN, ALICE, BOB, SCORER, analyst_settings, fetchval, tx

PAN = "4111111111111111"


@pytest.fixture
def client(fresh_database: str, api_redis_url: str) -> Iterator[TestClient]:
    sla = CaseSettings(sla_high_hours=0.001, sla_medium_hours=0.001, sla_low_hours=0.001)
    settings = analyst_settings(fresh_database, api_redis_url, cases=sla)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def scored(client: TestClient, **fields: Any) -> str:
    answer = client.post("/v1/transactions", json=tx(**fields), headers=SCORER)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["transaction_id"])


def case_of(client: TestClient, card: str) -> dict[str, Any]:
    found = client.get("/v1/cases", params={"card_id": card}, headers=ALICE).json()["cases"]
    assert len(found) == 1
    return dict(found[0])


def learned(client: TestClient, count: int) -> None:
    deadline = time.monotonic() + 20
    query = "SELECT count(*) FROM learn_log g JOIN labels l ON l.seq = g.label_seq"
    while fetchval(client, query + " WHERE l.source = 'review'") < count:
        assert time.monotonic() < deadline, "the case's labels were not learned"
        time.sleep(0.1)


def test_scopes(client: TestClient) -> None:
    assert client.get("/v1/cases").status_code == 401
    assert client.get("/v1/cases", headers=SCORER).status_code == 403
    assert client.get("/v1/cases", headers=ADMIN).status_code == 403
    assert client.post("/v1/cases/1/claim", headers=SCORER).status_code == 403
    assert client.get("/v1/cases", headers=ALICE).status_code == 200


def test_alerts_of_a_card_join_its_open_case(client: TestClient) -> None:
    first = scored(client, card_id="card_a")
    second = scored(client, card_id="card_a")
    scored(client, card_id="card_b")
    case = case_of(client, "card_a")
    assert case["alerts"] == 2 and case["status"] == "open" and case["assignee"] is None
    detail = client.get(f"/v1/cases/{case['id']}", headers=BOB).json()
    assert [t["transaction_id"] for t in detail["transactions"]] == [first, second]
    assert {t["kind"] for t in detail["transactions"]} == {"review"}
    assert [a["action"] for a in detail["audit"]] == ["alert", "alert"]
    # every SLA here is 3.6 s: a case waits past it
    deadline = time.monotonic() + 10
    while not client.get(f"/v1/cases/{case['id']}", headers=BOB).json()["overdue"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert client.get("/v1/cases/999999", headers=BOB).status_code == 404


def test_a_claim_locks_the_case_for_others(client: TestClient) -> None:
    scored(client, card_id="card_c")
    case_id = case_of(client, "card_c")["id"]
    claimed = client.post(f"/v1/cases/{case_id}/claim", headers=ALICE)
    assert claimed.status_code == 200
    assert claimed.json()["assignee"] == "alice" and claimed.json()["status"] == "investigating"
    for action in ("claim", "release"):
        refused = client.post(f"/v1/cases/{case_id}/{action}", headers=BOB)
        assert refused.status_code == 409 and refused.json()["holder"] == "alice"
    refused = client.post(f"/v1/cases/{case_id}/close", json={"outcome": "fraud"}, headers=BOB)
    assert refused.status_code == 409
    mine = client.get("/v1/cases", params={"assignee": "me"}, headers=ALICE).json()["cases"]
    assert [c["id"] for c in mine] == [case_id]
    assert client.get("/v1/cases", params={"assignee": "me"}, headers=BOB).json()["cases"] == []
    assert client.post(f"/v1/cases/{case_id}/release", headers=ALICE).json()["assignee"] is None
    assert client.post(f"/v1/cases/{case_id}/claim", headers=BOB).json()["assignee"] == "bob"


def test_an_expired_claim_is_no_lock(fresh_database: str, api_redis_url: str) -> None:
    settings = analyst_settings(
        fresh_database, api_redis_url, cases=CaseSettings(claim_minutes=1 / 600)
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        scored(c, card_id="card_x")
        case_id = case_of(c, "card_x")["id"]
        assert c.post(f"/v1/cases/{case_id}/claim", headers=ALICE).status_code == 200
        time.sleep(0.2)  # the claim lasted 0.1 s
        taken = c.post(f"/v1/cases/{case_id}/claim", headers=BOB)
        assert taken.status_code == 200 and taken.json()["assignee"] == "bob"


def test_notes_are_kept_and_card_numbers_refused(client: TestClient) -> None:
    scored(client, card_id="card_n")
    case_id = case_of(client, "card_n")["id"]
    note = client.post(f"/v1/cases/{case_id}/notes", json={"body": "<b>called</b>"}, headers=BOB)
    assert note.status_code == 201 and note.json()["author"] == "bob"
    pan = client.post(f"/v1/cases/{case_id}/notes", json={"body": f"card {PAN}"}, headers=BOB)
    assert pan.status_code == 422 and PAN not in pan.text
    nul = client.post(f"/v1/cases/{case_id}/notes", json={"body": "a\x00b"}, headers=BOB)
    assert nul.status_code == 422
    assert client.post("/v1/cases/999999/notes", json={"body": "x"}, headers=BOB).status_code == 404
    detail = client.get(f"/v1/cases/{case_id}", headers=ALICE).json()
    assert [n["body"] for n in detail["notes"]] == ["<b>called</b>"]


def test_closing_as_fraud_labels_each_transaction_once(client: TestClient) -> None:
    ids = [scored(client, card_id="card_f") for _ in range(3)]
    # one of them was judged in the review queue already: its label is not recorded twice
    verdict = client.post(f"/v1/reviews/{ids[0]}", json={"verdict": "fraud"}, headers=ALICE)
    assert verdict.status_code == 200
    case_id = case_of(client, "card_f")["id"]
    closed = client.post(f"/v1/cases/{case_id}/close", json={"outcome": "fraud"}, headers=BOB)
    assert closed.status_code == 200, closed.text
    assert closed.json()["labels"] == 2 and closed.json()["case"]["outcome"] == "fraud"
    again = client.post(f"/v1/cases/{case_id}/close", json={"outcome": "legitimate"}, headers=BOB)
    assert again.status_code == 409 and again.json()["closed_by"] == "bob"
    learned(client, 3)
    for transaction_id in ids:
        count = "SELECT count(*) FROM learn_log WHERE transaction_id = $1"
        assert fetchval(client, count, transaction_id) == 1
        verdicts = "SELECT verdict FROM review_queue WHERE transaction_id = $1"
        assert fetchval(client, verdicts, transaction_id) == "fraud"
    # a new alert of the card opens a new case
    scored(client, card_id="card_f")
    assert case_of(client, "card_f")["id"] != case_id
    audit = client.get(f"/v1/cases/{case_id}", headers=ALICE).json()["audit"]
    assert audit[-1]["who"] == "bob" and audit[-1]["action"] == "close"
    assert audit[-1]["detail"]["outcome"] == "fraud"


def test_bulk_close(client: TestClient) -> None:
    for card in ("card_1a", "card_1b", "card_1c"):
        scored(client, card_id=card)
    a, b, c = (case_of(client, card)["id"] for card in ("card_1a", "card_1b", "card_1c"))
    client.post(f"/v1/cases/{c}/claim", headers=ALICE)
    answer = client.post(
        "/v1/cases/close", json={"ids": [a, b, c, 999999], "outcome": "inconclusive"}, headers=BOB
    )
    assert answer.status_code == 200
    results = {r["id"]: r["result"] for r in answer.json()["results"]}
    assert results == {a: "closed", b: "closed", c: "held", 999999: "not_found"}
    assert fetchval(client, "SELECT count(*) FROM labels WHERE source = 'review'") == 0
    closed = client.get("/v1/cases", params={"status": "closed"}, headers=BOB).json()["cases"]
    assert {x["id"] for x in closed} == {a, b}
    too_many = client.post(
        "/v1/cases/close", json={"ids": list(range(1, 300)), "outcome": "fraud"}, headers=BOB
    )
    assert too_many.status_code == 422


def test_a_watch_list_hit_is_an_alert(fresh_database: str, api_redis_url: str) -> None:
    settings = analyst_settings(
        fresh_database,
        api_redis_url,
        scoring=ScoringSettings(
            warmup_labels=0, warmup_frauds=0, review_threshold=0.99, decline_threshold=1.0
        ),
        decisions=DecisionSettings(),
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        entry = {"entity": "merchant", "value": "m_watch", "kind": "watch", "reason": "test"}
        assert c.post("/v1/lists", json=entry, headers=ADMIN).status_code == 201
        scored(c, card_id="card_w", merchant_id="m_plain")
        scored(c, card_id="card_w", merchant_id="m_watch")
        detail = c.get(f"/v1/cases/{case_of(c, 'card_w')['id']}", headers=ALICE).json()
        assert [t["kind"] for t in detail["transactions"]] == ["watch"]


def test_case_series_exist_from_start_and_count_overdue(client: TestClient) -> None:
    fresh = client.get("/metrics").text
    for priority in ("high", "medium", "low"):
        assert f'riverguard_cases_overdue{{priority="{priority}"}} 0.0' in fresh
        assert f'riverguard_cases_open{{priority="{priority}"}} 0.0' in fresh
    assert 'riverguard_cases_closed_total{outcome="fraud"} 0.0' in fresh
    scored(client, card_id="card_g")
    case = case_of(client, "card_g")
    state = client.app.state.riverguard  # type: ignore[attr-defined]
    assert client.portal is not None
    later = datetime.now(UTC) + timedelta(hours=1)  # every SLA here is 3.6 s
    client.portal.call(state.cases.observe, later)
    text = client.get("/metrics").text
    assert f'riverguard_cases_open{{priority="{case["priority"]}"}} 1.0' in text
    assert f'riverguard_cases_overdue{{priority="{case["priority"]}"}} 1.0' in text
