"""The PAN rule per field: card-like fields refuse card numbers, own-format ids never do."""

from __future__ import annotations

import json
import random
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from features import pan
from features.schema import Label, Problem, Transaction, decode_label, decode_transaction

PAN = "4111111111111111"
NOW_TEXT = "2026-01-06T00:00:00+00:00"
BULK = 100_000
LUHN_HEX_ID = "bb-44309474983643b9"  # the dead-lettered id of the defect: 14 digits, Luhn-valid
_RUN = re.compile(r"\d{13,19}")


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "transaction_id": "tx-1",
        "card_id": "card_1",
        "merchant_id": "m_1",
        "amount": Decimal("12.5"),  # as JSON numbers reach the model
        "currency": "EUR",
        "timestamp": "2026-01-05T10:00:00Z",
    }
    body.update(overrides)
    return body


def _raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body, default=float).encode()


def _decode(body: dict[str, Any]) -> Transaction:
    return decode_transaction(_raw(body), now=datetime.fromisoformat(NOW_TEXT))


def _merchant_ids(rng: random.Random, n: int) -> list[str]:
    """15-digit acquirer MIDs, the usual format."""
    return [str(rng.randrange(10**14, 10**15)) for _ in range(n)]


def _transaction_ids(rng: random.Random, n: int) -> list[str]:
    """Half random hex, half order ids built from a 14-digit timestamp plus a sequence."""
    hex_ids = [f"{rng.getrandbits(64):016x}" for _ in range(n // 2)]
    order_ids = [
        f"{rng.randrange(20200101000000, 20261231235959)}{rng.randrange(100):02d}"
        for _ in range(n - n // 2)
    ]
    return hex_ids + order_ids


def _label_body(**overrides: Any) -> dict[str, Any]:
    body = {"transaction_id": "tx-1", "is_fraud": True, "labeled_at": "2026-01-05T11:00:00Z"}
    return {**body, **overrides}


def _accepts(model: type[Any], body: dict[str, Any]) -> bool:
    try:
        model.model_validate(body)
    except ValueError:
        return False
    return True


def test_random_merchant_and_transaction_ids_are_never_rejected() -> None:
    rng = random.Random(20260105)
    merchants = _merchant_ids(rng, BULK)
    transactions = _transaction_ids(rng, BULK)
    # the bulk exercises the defect: about one id in ten would have been refused before
    assert sum(pan.looks_like_pan(m) for m in merchants) > BULK // 20
    assert sum(pan.looks_like_pan(t) for t in transactions) > BULK // 50
    base = _body()
    assert _accepts(Transaction, base)
    rejected = [
        (merchant_id, transaction_id)
        for merchant_id, transaction_id in zip(merchants, transactions, strict=True)
        if not _accepts(
            Transaction, {**base, "merchant_id": merchant_id, "transaction_id": transaction_id}
        )
    ]
    assert rejected == []


def test_the_defect_id_is_accepted_in_transactions_and_labels() -> None:
    assert pan.looks_like_pan(LUHN_HEX_ID)
    assert _decode(_body(transaction_id=LUHN_HEX_ID)).transaction_id == LUHN_HEX_ID
    raw = json.dumps(
        {"transaction_id": LUHN_HEX_ID, "is_fraud": True, "labeled_at": "2026-01-05T11:00:00Z"}
    )
    label = decode_label(raw, now=datetime.fromisoformat(NOW_TEXT))
    assert label.transaction_id == LUHN_HEX_ID


@pytest.mark.parametrize("field", sorted(pan.CARD_LIKE_FIELDS))
@pytest.mark.parametrize("value", [PAN, f"tok_{PAN}", "5500005555555559"])
def test_a_pan_in_a_card_like_field_is_rejected_without_the_value(field: str, value: str) -> None:
    with pytest.raises(Problem) as caught:
        _decode(_body(**{field: value}))
    assert caught.value.reason == "pan_rejected"
    (error,) = caught.value.errors
    assert (error["loc"], error["type"]) == ([field], "pan") and "card number" in error["msg"]
    assert value not in repr(caught.value.errors) and value not in str(caught.value)


@pytest.mark.parametrize(("model", "base"), [(Transaction, _body), (Label, _label_body)])
def test_every_free_form_string_field_has_exactly_one_rule(model: Any, base: Any) -> None:
    assert not pan.CARD_LIKE_FIELDS & pan.OWN_FORMAT_ID_FIELDS
    free_form = {f for f in model.model_fields if _accepts(model, base(**{f: "free_123"}))}
    assert free_form
    assert free_form <= pan.CARD_LIKE_FIELDS | pan.OWN_FORMAT_ID_FIELDS
    for field in free_form:
        with_pan = _accepts(model, base(**{field: PAN}))
        assert with_pan == (field in pan.OWN_FORMAT_ID_FIELDS), field


def test_card_like_values_without_a_pan_and_non_luhn_runs_are_accepted() -> None:
    tx = _decode(_body(card_id="4111111111111112", device_id="dev_1", customer_id="c_9"))
    assert tx.card_id == "4111111111111112"


# dead-letter copies


def _luhn_runs(raw: bytes) -> list[str]:
    return [m for m in _RUN.findall(raw.decode("utf-8", "replace")) if pan.luhn_valid(m)]


def test_a_clean_record_keeps_its_exact_bytes_including_a_luhn_merchant_id() -> None:
    raw = _raw(_body(merchant_id="100000000000009", transaction_id=LUHN_HEX_ID))
    assert pan.redact_record(raw) == raw


@pytest.mark.parametrize("field", [*sorted(pan.CARD_LIKE_FIELDS), "note", "currency"])
def test_a_pan_outside_the_id_fields_is_redacted_and_the_ids_are_kept(field: str) -> None:
    raw = _raw(_body(**{field: PAN}, merchant_id="100000000000009"))
    copy = json.loads(pan.redact_record(raw))
    assert copy[field] == pan.REDACTED
    assert copy["merchant_id"] == "100000000000009"
    assert PAN not in json.dumps(copy)


def test_numbers_nested_values_keys_and_escapes_are_redacted() -> None:
    escaped = "\\u0034" + PAN[1:]
    raw = (
        '{"card_id": "' + escaped + '", "amount": ' + PAN + ', "x": [{"y": "' + PAN + '"}], '
        '"' + PAN + '": 1, "merchant_id": ' + PAN + "}"
    ).encode()
    copy = pan.redact_record(raw)
    assert PAN.encode() not in copy and b"\\u0034" not in copy
    assert _luhn_runs(copy) == []
    parsed = json.loads(copy)
    assert parsed["card_id"] == parsed["amount"] == parsed["merchant_id"] == pan.REDACTED


def test_a_pan_in_a_nested_id_field_is_redacted() -> None:
    raw = json.dumps({"inner": {"merchant_id": PAN}, "transaction_id": "t"}).encode()
    assert PAN.encode() not in pan.redact_record(raw)


def test_duplicate_keys_and_nan_survive_into_the_copy() -> None:
    raw = b'{"card_id": "' + PAN.encode() + b'", "card_id": "c", "amount": NaN}'
    assert pan.redact_record(raw) == b'{"card_id":"[REDACTED]","card_id":"c","amount":NaN}'


def test_a_pan_shared_by_an_id_and_a_card_field_leaves_no_raw_copy() -> None:
    raw = _raw(_body(merchant_id=PAN, card_id=PAN))
    copy = json.loads(pan.redact_record(raw))
    assert copy["merchant_id"] == PAN  # the id is kept: merchant ids are not card numbers
    assert copy["card_id"] == pan.REDACTED


@pytest.mark.parametrize(
    "raw", [b"\x00\xffgarbage " + PAN.encode() + b"{", b'{"card_id": "' + PAN.encode() + b'"']
)
def test_bytes_that_are_not_json_lose_every_pan_looking_run(raw: bytes) -> None:
    copy = pan.redact_record(raw)
    assert PAN.encode() not in copy and pan.REDACTED.encode() in copy


@pytest.mark.parametrize("depth", [1, 500, 990, 5000])
def test_deeply_nested_records_are_redacted_without_an_error(depth: int) -> None:
    raw = b"[" * depth + b'"' + PAN.encode() + b'"' + b"]" * depth
    copy = pan.redact_record(raw)
    assert PAN.encode() not in copy and pan.REDACTED.encode() in copy


def test_random_records_never_keep_a_pan_outside_the_id_fields() -> None:
    rng = random.Random(7)
    fields = [*sorted(pan.CARD_LIKE_FIELDS), "note", "amount"]
    for _ in range(2000):
        field = rng.choice(fields)
        value: Any = PAN if rng.random() < 0.5 else f"x{PAN}y"
        if field == "amount":
            value = int(PAN)
        merchant = str(rng.randrange(10**14, 10**15))
        raw = _raw(_body(**{field: value}, merchant_id=merchant))
        copy = json.loads(pan.redact_record(raw))
        assert copy["merchant_id"] == merchant
        kept = {k: v for k, v in copy.items() if k not in pan.OWN_FORMAT_ID_FIELDS}
        assert _luhn_runs(json.dumps(kept).encode()) == []
