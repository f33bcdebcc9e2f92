"""Named API keys, the list index, and the lists API on the real stack (scopes, PAN refusal,
expiry, removal history, pagination, refresh across processes)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api import auth
from app.config import Settings
from app.core.lists import ListBook, ListEntry, ListIndex
from app.main import create_app
from app.postgres.lists import PgListStore
from features.schema import Transaction

PAN = "4111111111111111"
KEYS = "admin-key=score|label|admin@ops,score-key=score,review-key=review@alice"
ADMIN = {"X-API-Key": "admin-key"}
SCORER = {"X-API-Key": "score-key"}
REVIEWER = {"X-API-Key": "review-key"}
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


# ---- keys -------------------------------------------------------------------------------
def test_keys_take_an_optional_name_after_the_scopes() -> None:
    hashed = "sha256:" + "ab" * 32
    keys = auth.parse_keys(f"a:b=c=score@svc, {hashed}=admin|review, plain=label@x.y-z_1")
    assert [(k.name, sorted(k.scopes)) for k in keys] == [
        ("svc", ["score"]),
        ("key-2", ["admin", "review"]),
        ("x.y-z_1", ["label"]),
    ]
    ring = auth.KeyRing(tuple(keys))
    assert ring.principal_of("a:b=c") == auth.Principal("svc", frozenset({"score"}))
    assert ring.principal_of("a:b") is None and ring.principal_of(None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("k1=score@same,k2=label@same", "taken"),
        ("k1=score@bad name", "a name is"),
        ("k1=score@", "a name is"),
        ("k1=score|psychic@x", "must look like"),
        ("k1=score,key-1x=label@key-1", "taken"),
    ],
)
def test_bad_key_entries_name_the_entry_never_the_key(text: str, message: str) -> None:
    with pytest.raises(auth.KeyConfigError, match=message) as caught:
        auth.parse_keys(text)
    assert "k1" not in str(caught.value) and "key-1x" not in str(caught.value)


# ---- the index --------------------------------------------------------------------------
def _tx(**overrides: Any) -> Transaction:
    body: dict[str, Any] = {
        "transaction_id": "tx-1",
        "card_id": "card_1",
        "merchant_id": "m_1",
        "amount": Decimal(10),
        "currency": "EUR",
        "timestamp": NOW,
        "country": "FR",
    }
    return Transaction.model_validate({**body, **overrides})


def _entry(entity: Any, value: str, kind: Any, **extra: Any) -> ListEntry:
    return ListEntry(entity, value, kind, "test", NOW, "ops", **extra)


def test_index_hits_by_entity_ignoring_expired_and_removed_entries() -> None:
    index = ListIndex(
        [
            _entry("card", "card_1", "block"),
            _entry("card", "card_1", "watch", expires_at=NOW + timedelta(hours=1)),
            _entry("merchant", "m_1", "allow", removed_at=NOW, removed_by="ops"),
            _entry("country", "FR", "watch"),
            _entry("device", "dev_9", "block"),
        ],
        version=3,
    )
    assert index.hits(_tx(), NOW) == {"card": ("block", "watch"), "country": ("watch",)}
    later = NOW + timedelta(hours=2)
    assert index.hits(_tx(), later) == {"card": ("block",), "country": ("watch",)}
    assert index.hits(_tx(device_id="dev_9", country=None), NOW)["device"] == ("block",)
    assert index.hits(_tx(card_id="card_2", country="DE"), NOW) == {}
    assert index.counts(later) == {"allow": 0, "block": 2, "watch": 1}


# ---- the API on the real stack ------------------------------------------------------------
@pytest.fixture
def client(fresh_database: str, api_redis_url: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=fresh_database,
        redis_url=api_redis_url,
        api_keys=KEYS,
        kafka_bootstrap=None,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def _state(client: TestClient) -> Any:
    return client.app.state.riverguard  # type: ignore[attr-defined]


def _add(client: TestClient, **body: Any) -> Any:
    entry = {"entity": "card", "value": "card_1", "kind": "block", "reason": "stolen", **body}
    return client.post("/v1/lists", json=entry, headers=ADMIN)


def test_lists_need_the_admin_scope(client: TestClient) -> None:
    assert client.get("/v1/lists").status_code == 401
    assert client.get("/v1/lists", headers=REVIEWER).status_code == 403
    assert client.get("/v1/lists", headers=SCORER).status_code == 403
    assert _add(client).status_code == 201
    assert client.delete("/v1/lists/card/block/card_1", headers=REVIEWER).status_code == 403
    assert client.get("/v1/lists", headers=ADMIN).status_code == 200


def test_a_card_number_is_refused_and_never_echoed(client: TestClient) -> None:
    answers = [
        _add(client, value=PAN),
        _add(client, entity="device", value=f"dev{PAN}"),
        _add(client, reason=f"card {PAN} reported"),
        client.delete(f"/v1/lists/card/block/{PAN}", headers=ADMIN),
        client.get("/v1/lists", params={"entity": "card", "prefix": PAN}, headers=ADMIN),
        client.get("/v1/lists", params={"prefix": PAN}, headers=ADMIN),
    ]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"] == "pan_rejected"
        assert PAN not in answer.text
    # a merchant id has a format of its own, as on transactions: digits are accepted
    assert _add(client, entity="merchant", value="100000000000009").status_code == 201
    bad_country = _add(client, entity="country", value="XX")
    assert bad_country.status_code == 422
    (error,) = bad_country.json()["errors"]
    assert (error["loc"], error["type"]) == (["body", "value"], "country")
    assert error["msg"] == "must be an ISO 3166 alpha-2 country code"


def test_an_entry_counts_at_once_and_names_its_author(client: TestClient) -> None:
    created = _add(client)
    assert created.status_code == 201
    entry = created.json()
    assert (entry["created_by"], entry["removed_at"]) == ("ops", None)
    assert _add(client).status_code == 409  # one active entry per (entity, value, kind)
    assert _add(client, kind="watch").status_code == 201
    tx = _tx(card_id="card_1", country=None)
    assert _state(client).lists.index.hits(tx, datetime.now(UTC)) == {"card": ("block", "watch")}


def test_expired_entries_are_ignored_listed_on_request_and_replaceable(
    client: TestClient,
) -> None:
    state = _state(client)
    past = datetime.now(UTC) - timedelta(minutes=1)
    expired = ListEntry("card", "card_x", "block", "old", past - timedelta(days=1), "ops", past)
    client.portal.call(state.lists.add, expired)  # type: ignore[union-attr]
    assert _add(client, value="card_x", expires_at=past.isoformat()).status_code == 422
    assert state.lists.index.hits(_tx(card_id="card_x"), datetime.now(UTC)) == {}
    listed = client.get("/v1/lists", headers=ADMIN).json()["entries"]
    assert listed == []
    with_expired = client.get("/v1/lists", params={"include_expired": True}, headers=ADMIN)
    assert [e["value"] for e in with_expired.json()["entries"]] == ["card_x"]
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert _add(client, value="card_x", expires_at=soon).status_code == 201  # the twin retires
    params = {"include_removed": True, "include_expired": True}
    history = client.get("/v1/lists", params=params, headers=ADMIN).json()
    assert [(e["value"], e["removed_by"]) for e in history["entries"]] == [
        ("card_x", "ops"),
        ("card_x", None),
    ]
    assert state.lists.index.hits(_tx(card_id="card_x"), datetime.now(UTC)) == {"card": ("block",)}


def test_removal_keeps_history_and_frees_the_slot(client: TestClient) -> None:
    _add(client)
    removed = client.delete("/v1/lists/card/block/card_1", headers=ADMIN)
    assert removed.status_code == 200
    assert removed.json()["removed_by"] == "ops" and removed.json()["removed_at"]
    assert client.delete("/v1/lists/card/block/card_1", headers=ADMIN).status_code == 404
    assert _state(client).lists.index.hits(_tx(country=None), datetime.now(UTC)) == {}
    assert client.get("/v1/lists", headers=ADMIN).json()["entries"] == []
    assert _add(client, reason="again").status_code == 201
    everything = client.get("/v1/lists", params={"include_removed": True}, headers=ADMIN)
    assert [e["reason"] for e in everything.json()["entries"]] == ["stolen", "again"]


def test_filters_prefix_and_pagination(client: TestClient) -> None:
    for value in ("card_a1", "card_a2", "card_b1"):
        assert _add(client, value=value).status_code == 201
    assert _add(client, entity="country", value="RU", kind="watch").status_code == 201
    page = client.get("/v1/lists", params={"prefix": "card_a"}, headers=ADMIN).json()
    assert [e["value"] for e in page["entries"]] == ["card_a1", "card_a2"]
    watch = client.get("/v1/lists", params={"kind": "watch"}, headers=ADMIN).json()["entries"]
    assert [e["value"] for e in watch] == ["RU"]
    first = client.get("/v1/lists", params={"entity": "card", "limit": 2}, headers=ADMIN).json()
    assert len(first["entries"]) == 2 and first["next_cursor"]
    params = {"entity": "card", "limit": 2, "cursor": first["next_cursor"]}
    rest = client.get("/v1/lists", params=params, headers=ADMIN).json()
    assert [e["value"] for e in rest["entries"]] == ["card_b1"] and rest["next_cursor"] is None
    # "_" is a literal in a prefix, never a LIKE wildcard
    assert client.get("/v1/lists", params={"prefix": "card_"}, headers=ADMIN).status_code == 200
    none = client.get("/v1/lists", params={"prefix": "cardXa"}, headers=ADMIN).json()
    assert none["entries"] == []


def test_another_process_sees_a_change_at_its_next_refresh(client: TestClient) -> None:
    state = _state(client)
    other = ListBook(PgListStore(state.records.pool))
    portal = client.portal
    assert portal is not None
    assert portal.call(other.refresh) is False  # a fresh database: version 0, as the empty index
    _add(client, value="card_z")
    assert portal.call(other.refresh) is True
    assert other.index.hits(_tx(card_id="card_z"), datetime.now(UTC)) == {"card": ("block",)}
    assert portal.call(other.refresh) is False  # nothing moved: no reload
    client.delete("/v1/lists/card/block/card_z", headers=ADMIN)
    assert portal.call(other.refresh) is True
    assert other.index.hits(_tx(card_id="card_z"), datetime.now(UTC)) == {}
    text = client.get("/metrics").text
    assert 'riverguard_list_hits_total{entity="device",kind="watch"} 0.0' in text
    assert 'riverguard_list_entries{kind="block"}' in text
