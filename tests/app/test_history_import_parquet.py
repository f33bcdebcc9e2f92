"""`riverguard history import` of Parquet exports (the `parquet` extra: pyarrow).

The same generated rows as the CSV tests, written with the column types a warehouse gives
(integer ids, timestamps, floats, booleans) in both documented layouts: the imported stream must
equal the one built from the generator's values, and the bad rows must be counted by reason.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.app.test_history_import import (
    PAN,
    START,
    _expected,
    _good_rows,
    _run,
)


def _write(path: Path, columns: dict[str, tuple[pa.DataType, list[Any]]]) -> None:
    table = pa.table(
        {name: pa.array(values, type=kind) for name, (kind, values) in columns.items()}
    )
    pq.write_table(table, path, row_group_size=64)  # several row groups, as a real export


def test_handbook_layout_from_typed_parquet(tmp_path: Path) -> None:
    good = _good_rows(seed=17, n=250)
    rows = [dict(r) for r in good]
    random.Random(4).shuffle(rows)  # unsorted timestamps
    rows.insert(40, {**rows[3]})  # the same id twice, same payload
    rows.insert(90, {**rows[0], "id": "9001", "card": PAN})  # a card number as the customer
    rows.insert(120, {**rows[0], "id": "9002", "amount": -4.0})
    path = tmp_path / "handbook.parquet"
    _write(path, {
        "TRANSACTION_ID": (pa.int64(), [int(r["id"]) for r in rows]),
        "TX_DATETIME": (pa.timestamp("us"), [r["at"].replace(tzinfo=None) for r in rows]),
        "CUSTOMER_ID": (pa.int64(), [int(r["card"]) for r in rows]),
        "TERMINAL_ID": (pa.int64(), [int(r["merchant"]) for r in rows]),
        "TX_AMOUNT": (pa.float64(), [r["amount"] for r in rows]),
        "TX_FRAUD": (pa.int8(), [int(r["fraud"]) for r in rows]),
    })  # fmt: skip

    code, output, records, rejects = _run(tmp_path, str(path), "--layout", "handbook")

    assert code == 0, output
    assert records == _expected(good, "EUR", timedelta(days=7))
    assert sorted(f"{r['field']}:{r['reason']}" for r in rejects) == [
        "amount:greater_than", "card_id:pan", "transaction_id:duplicate_id"]  # fmt: skip
    assert PAN not in (tmp_path / "rejects.csv").read_text() + output


def test_ieee_cis_layout_from_parquet_with_labels_in_a_second_parquet_file(
    tmp_path: Path,
) -> None:
    origin = datetime(2018, 3, 1, tzinfo=UTC)
    good = _good_rows(seed=23, n=120)
    tx_path, label_path = tmp_path / "train.parquet", tmp_path / "labels.pq"
    _write(tx_path, {
        "TransactionID": (pa.string(), [r["id"] for r in good]),
        "TransactionDT": (pa.int64(), [int((r["at"] - origin).total_seconds()) for r in good]),
        "TransactionAmt": (pa.float64(), [r["amount"] for r in good]),
        "ProductCD": (pa.string(), [r["merchant"] for r in good]),
        "card1": (pa.string(), [r["card"] for r in good]),
    })  # fmt: skip
    _write(label_path, {
        "TransactionID": (pa.string(), [r["id"] for r in good] + ["no-such-tx"]),
        "isFraud": (pa.bool_(), [bool(r["fraud"]) for r in good] + [True]),
        "seen": (pa.timestamp("ms", tz="UTC"),
                 [r["at"] + timedelta(days=2) for r in good] + [START]),
    })  # fmt: skip

    code, output, records, rejects = _run(
        tmp_path, str(tx_path), "--layout", "ieee-cis", "--start", origin.isoformat(),
        "--currency", "USD", "--labels", str(label_path),
        "--labels-map", "transaction_id=TransactionID,is_fraud=isFraud,labeled_at=seen",
        "--labels-timestamps", "iso",
    )  # fmt: skip

    assert code == 0, output
    assert records == _expected(good, "USD", timedelta(days=2))
    assert [f"{r['field']}:{r['reason']}" for r in rejects] == [
        "transaction_id:unknown_transaction"
    ]


def test_a_file_that_is_not_parquet_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "export.parquet"
    path.write_text("TRANSACTION_ID,TX_DATETIME\n1,2018-04-01\n")
    code, output, records, _ = _run(tmp_path, str(path), "--layout", "handbook")
    assert code == 2
    assert "is not a readable Parquet file (ArrowInvalid)" in " ".join(output.split())
    assert records == []


def test_label_columns_mapped_for_both_files_are_refused(tmp_path: Path) -> None:
    good = _good_rows(seed=2, n=3)
    path = tmp_path / "tx.parquet"
    _write(path, {"TransactionID": (pa.string(), [r["id"] for r in good])})
    code, output, _, _ = _run(tmp_path, str(path), "--layout", "ieee-cis", "--map",
                              "is_fraud=isFraud", "--labels", str(path))  # fmt: skip
    assert code == 2
    assert "labels come from --labels: drop is_fraud from --map" in output


def test_without_pyarrow_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "export.parquet"
    _write(path, {"TRANSACTION_ID": (pa.int64(), [1])})
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # as if it were not installed
    code, output, _, _ = _run(tmp_path, str(path), "--layout", "handbook")
    assert code == 2
    assert "reading Parquet needs pyarrow, the `parquet` extra" in " ".join(output.split())
