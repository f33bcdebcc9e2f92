"""Lists in bulk on the real stack: CSV import (row by row, all or nothing, card numbers refused
without echo) and export (imports back unchanged)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from app.core import list_csv
from tests.app.conftest import ADMIN, SCORER, tx

PAN = "4111111111111111"
HEADER = "entity,value,kind,reason,expires_at\r\n"
CSV = {"Content-Type": "text/csv"}


def later() -> str:
    return (datetime.now(UTC) + timedelta(days=30)).isoformat()


def entries(client: TestClient) -> list[tuple[str, str, str, str]]:
    found = client.get("/v1/lists", headers=ADMIN).json()["entries"]
    return [(e["entity"], e["value"], e["kind"], e["reason"]) for e in found]


def test_import_is_all_or_nothing_and_never_echoes_a_card_number(client: TestClient) -> None:
    bad = (
        HEADER
        + "card,tok_ok,block,stolen card,\r\n"
        + f"card,{PAN},block,stolen,\r\n"
        + f"merchant,m_1,watch,call {PAN},\r\n"
        + "country,XX,block,nope,\r\n"
        + "device,d_1,maybe,x,2001-01-01T00:00:00+00:00\r\n"
    )
    answer = client.post("/v1/lists/import", content=bad, headers={**ADMIN, **CSV})
    assert answer.status_code == 422
    assert PAN not in answer.text and "4111" not in answer.text
    assert [{k: e[k] for k in ("loc", "type")} for e in answer.json()["errors"]] == [
        {"loc": ["body", "3", "value"], "type": "pan"},
        {"loc": ["body", "4", "reason"], "type": "pan"},
        {"loc": ["body", "5", "value"], "type": "country"},
        {"loc": ["body", "6", "kind"], "type": "kind"},
        {"loc": ["body", "6", "expires_at"], "type": "past"},
    ]
    assert entries(client) == []  # the good first row was not imported either
    twice = HEADER + "card,tok_a,block,x,\r\ncard,tok_a,block,y,\r\n"
    dup = client.post("/v1/lists/import", content=twice, headers={**ADMIN, **CSV})
    assert [{k: e[k] for k in ("loc", "type")} for e in dup.json()["errors"]] == [
        {"loc": ["body", "3", "value"], "type": "duplicate"}
    ]
    assert client.post("/v1/lists/import", content="a,b\r\n", headers=ADMIN).status_code == 422
    assert client.post("/v1/lists/import", content=b"\xff", headers=ADMIN).status_code == 400
    assert client.post("/v1/lists/import", content=HEADER, headers=SCORER).status_code == 403


def test_import_applies_at_once_and_export_imports_back(client: TestClient) -> None:
    good = (
        HEADER
        + "card,tok_stolen,block,stolen card,\r\n"
        + f'merchant,m_watch,watch,=HYPERLINK("x"),{later()}\r\n'
        + "country,FR,allow,home market,\r\n"
    )
    answer = client.post("/v1/lists/import", content=good, headers={**ADMIN, **CSV})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"imported": 3}
    scored = client.post("/v1/transactions", json=tx(card_id="tok_stolen"), headers=SCORER)
    assert (scored.json()["decision"], scored.json()["decided_by"]) == ("decline", "list")
    exported = client.get("/v1/lists/export", headers=ADMIN)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "'=HYPERLINK" in exported.text  # a spreadsheet does not run it
    again = client.post("/v1/lists/import", content=exported.text, headers={**ADMIN, **CSV})
    assert again.status_code == 409  # the same entries are live: nothing doubled
    assert [{k: e[k] for k in ("loc", "type")} for e in again.json()["errors"]] == [
        {"loc": ["body", "2", "value"], "type": "exists"}
    ]
    before = entries(client)
    parsed = list_csv.parse(exported.text, "x", datetime.now(UTC))
    assert [(e.entity, e.value, e.kind, e.reason) for e in parsed] == before
    only_cards = client.get("/v1/lists/export", params={"entity": "card"}, headers=ADMIN).text
    assert only_cards.splitlines()[1:] == ["card,tok_stolen,block,stolen card,"]
