"""Stream files: write, read back, truth file, and clear errors on bad lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.jsonl import JsonlError, count_records, read_jsonl, write_jsonl
from simulator.records import Record, Truth


def test_read_gives_back_what_was_written(tmp_path: Path, small_records: list[Record]) -> None:
    path, truth = tmp_path / "s.jsonl", tmp_path / "truth.jsonl"
    written = write_jsonl(small_records, path, truth_out=truth)
    assert written == len(small_records) == count_records(path)
    assert list(read_jsonl(path)) == small_records
    truths = [json.loads(line) for line in truth.read_text().splitlines()]
    txs = [r for r in small_records if r.kind == "transaction"]
    assert [t["transaction_id"] for t in truths] == [r.transaction_id for r in txs]
    assert [t["is_fraud"] for t in truths] == [r.truth.is_fraud for r in txs if r.truth]


def test_record_round_trips_through_json() -> None:
    record = Record(
        "transaction",
        "2026-01-01T00:00:00.000Z",
        {"transaction_id": "tx_1", "amount": 12.5},
        Truth(True, "stolen_card"),
    )
    assert Record.from_json(record.to_json()) == record
    assert record.payload() == b'{"transaction_id":"tx_1","amount":12.5}'


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"kind": "refund", "at": "x", "data": {}}', "kind must be"),
        ('{"kind": "label", "at": 5, "data": {}}', "'at' must be a string"),
        ('{"kind": "label", "at": "x", "data": {"transaction_id": 5}}', "transaction_id"),
        (
            '{"kind": "transaction", "at": "x", "data": {"transaction_id": "t"}, "truth": {}}',
            "truth must be",
        ),
    ],
)
def test_a_bad_line_is_reported_with_its_number(tmp_path: Path, line: str, reason: str) -> None:
    good = Record("label", "2026-01-01T00:00:00Z", {"transaction_id": "tx_1"}).to_json()
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{good}\n\n{line}\n")
    with pytest.raises(JsonlError) as caught:
        list(read_jsonl(path))
    assert caught.value.line == 3
    assert reason in str(caught.value)
    assert "line 3" in str(caught.value)
