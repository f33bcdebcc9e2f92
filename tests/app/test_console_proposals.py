"""Four-eyes in the console over HTTP on the real stack: the rules and lists forms propose,
an approve key of another name approves or rejects on the proposals page; self-approval and
forms without the CSRF token are refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import ConsoleSettings
from app.main import create_app
from tests.app.conftest import fetchval, four_eyes_settings
from tests.app.console_helpers import SECRET, sign_in

KEYS = "ops-key=admin|review@ops,boss-key=admin|approve@boss,carol-key=approve@carol"
ENTRY = {"entity": "card", "kind": "block", "value": "card_bad", "reason": "takeover",
         "expires": ""}  # fmt: skip


@pytest.fixture
def client(fresh_database: str, api_redis_url: str) -> Iterator[TestClient]:
    console = ConsoleSettings(secret=SECRET)
    settings = four_eyes_settings(fresh_database, api_redis_url, KEYS, console=console)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def decide(client: TestClient, proposal_id: int, csrf: str, decision: str) -> Any:
    return client.post(
        f"/console/proposals/{proposal_id}", data={"csrf": csrf, "decision": decision}
    )


def _as(client: TestClient, key: str) -> str:
    client.cookies.clear()
    return sign_in(client, key)


def test_a_console_list_entry_waits_for_a_second_key(client: TestClient) -> None:
    csrf = _as(client, "ops-key")
    answer = client.post("/console/lists", data={**ENTRY, "csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith(
        "/console/proposals?proposed="
    )
    proposal_id = int(answer.headers["location"].rsplit("=", 1)[1])
    assert fetchval(client, "SELECT count(*) FROM list_entries") == 0
    page = client.get(answer.headers["location"])
    assert page.status_code == 200 and f'id="proposal-{proposal_id}"' in page.text
    # ops lacks the approve scope
    refused = decide(client, proposal_id, csrf, "approve")
    assert refused.status_code == 403
    csrf = _as(client, "carol-key")
    no_token = client.post(f"/console/proposals/{proposal_id}", data={"decision": "approve"})
    assert no_token.status_code == 403
    assert fetchval(client, "SELECT status FROM proposals WHERE id = $1", proposal_id) == "pending"
    done = decide(client, proposal_id, csrf, "approve")
    assert done.status_code == 200
    assert fetchval(client, "SELECT created_by FROM list_entries WHERE value = 'card_bad'") == "ops"
    decider = "SELECT decided_by FROM proposals WHERE id = $1"
    assert fetchval(client, decider, proposal_id) == "carol"


def test_self_approval_is_refused_in_the_console(client: TestClient) -> None:
    csrf = _as(client, "boss-key")
    rule = {"csrf": csrf, "id": "big", "name": "big", "expression": "amount > 100.0",
            "action": "decline", "priority": "10", "enabled": "on", "do": "save"}  # fmt: skip
    answer = client.post("/console/rules", data=rule, follow_redirects=False)
    assert answer.status_code == 303
    proposal_id = int(answer.headers["location"].rsplit("=", 1)[1])
    own = decide(client, proposal_id, csrf, "approve")
    assert own.status_code == 403 and "Self-approval refused" in own.text
    assert fetchval(client, "SELECT count(*) FROM rules") == 0
    csrf = _as(client, "carol-key")
    rejected = client.post(
        f"/console/proposals/{proposal_id}",
        data={"csrf": csrf, "decision": "reject", "reason": "too broad"},
    )
    assert rejected.status_code == 200 and "too broad" in rejected.text
    assert fetchval(client, "SELECT count(*) FROM rules") == 0
    assert fetchval(client, "SELECT status FROM proposals WHERE id = $1", proposal_id) == "rejected"
