"""`riverguard history import` on generated files in the two documented layouts.

Each file holds good rows in shuffled time order plus the bad rows a real export has (a card
number, a duplicate id, a conflicting duplicate, a bad amount, an unknown timestamp, a missing
card, a non-boolean fraud flag). The expected stream is built from the generator's own values,
not by the importer's code.
"""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from app.tools import cli as cli_module
from simulator.jsonl import read_jsonl

PAN = "4111111111111111"
HANDBOOK = ["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT",
            "TX_TIME_SECONDS", "TX_TIME_DAYS", "TX_FRAUD", "TX_FRAUD_SCENARIO"]  # fmt: skip
IEEE = ["TransactionID", "isFraud", "TransactionDT", "TransactionAmt", "ProductCD", "card1",
        "card2", "addr1"]  # fmt: skip
START = datetime(2018, 4, 1, tzinfo=UTC)


def _z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _good_rows(seed: int, n: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        at = START + timedelta(seconds=rng.randrange(0, 40 * 86_400))
        rows.append({"id": str(1000 + i), "at": at, "card": str(rng.randrange(50)),
                     "merchant": str(rng.randrange(20)), "amount": round(rng.uniform(1, 900), 2),
                     "fraud": rng.random() < 0.1})  # fmt: skip
    return rows


def _expected(
    rows: list[dict[str, object]], currency: str, delay: timedelta
) -> list[dict[str, Any]]:
    items = []
    for number, row in enumerate(rows):
        at = row["at"]
        assert isinstance(at, datetime)
        tx = {"transaction_id": row["id"], "card_id": row["card"], "merchant_id": row["merchant"],
              "amount": row["amount"], "currency": currency, "timestamp": _z(at)}  # fmt: skip
        items.append((at, 0, number, {"kind": "transaction", "at": _z(at), "data": tx}))
        label = {"transaction_id": row["id"], "is_fraud": row["fraud"],
                 "labeled_at": _z(at + delay), "source": "chargeback"}  # fmt: skip
        items.append(
            (at + delay, 1, number, {"kind": "label", "at": _z(at + delay), "data": label})
        )
    items.sort(key=lambda item: item[:3])
    return [item[3] for item in items]


def _write(path: Path, header: list[str], rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        writer.writerows(rows)


def _run(tmp_path: Path, *args: str) -> tuple[int, str, list[dict[str, Any]], list[dict[str, str]]]:
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.csv"
    result = CliRunner().invoke(
        cli_module.cli, ["history", "import", *args, "--out", str(out), "--rejects", str(rejects)]
    )
    records = [r.to_dict() for r in read_jsonl(out)] if out.exists() else []
    reject_rows = list(csv.DictReader(rejects.open())) if rejects.exists() else []
    return result.exit_code, result.output, records, reject_rows


BAD_HANDBOOK = [
    # (row values, expected reason key)
    ({"TRANSACTION_ID": "9001", "CUSTOMER_ID": PAN}, "card_id:pan"),
    ({"TRANSACTION_ID": "9002", "TX_AMOUNT": "-3"}, "amount:greater_than"),
    ({"TRANSACTION_ID": "9003", "TX_AMOUNT": "NaN"}, "amount:format"),
    ({"TRANSACTION_ID": "9004", "TX_DATETIME": "yesterday"}, "timestamp:format"),
    ({"TRANSACTION_ID": "9005", "CUSTOMER_ID": ""}, "card_id:missing"),
    ({"TRANSACTION_ID": "9006", "TX_FRAUD": "maybe"}, "is_fraud:not_a_boolean"),
]


def _handbook_row(row: dict[str, object]) -> dict[str, object]:
    at = row["at"]
    assert isinstance(at, datetime)
    seconds = int((at - START).total_seconds())
    return {"TRANSACTION_ID": row["id"], "TX_DATETIME": at.strftime("%Y-%m-%d %H:%M:%S"),
            "CUSTOMER_ID": row["card"], "TERMINAL_ID": row["merchant"], "TX_AMOUNT": row["amount"],
            "TX_TIME_SECONDS": seconds, "TX_TIME_DAYS": seconds // 86_400,
            "TX_FRAUD": int(bool(row["fraud"])), "TX_FRAUD_SCENARIO": 0}  # fmt: skip


def test_handbook_layout_imports_sorted_records_and_counts_rejects(tmp_path: Path) -> None:
    good = _good_rows(seed=7, n=300)
    lines = [_handbook_row(r) for r in good]
    random.Random(1).shuffle(lines)  # an unsorted export
    template = _handbook_row(good[0])
    bad = [{**template, **change} for change, _ in BAD_HANDBOOK]
    duplicate = dict(lines[5])  # same id, same payload
    conflict = {**lines[6], "TX_AMOUNT": 1.23}  # same id, another amount
    path = tmp_path / "handbook.csv"
    _write(path, HANDBOOK, lines[:100] + bad + [duplicate] + lines[100:] + [conflict])

    code, output, records, rejects = _run(tmp_path, str(path), "--layout", "handbook")

    assert code == 0, output
    # row 9006 has a valid transaction; only its label part is rejected
    expected_good = list(good)
    tx_ids = [r["data"]["transaction_id"] for r in records if r["kind"] == "transaction"]
    assert sorted(tx_ids) == sorted([r["id"] for r in expected_good] + ["9006"])
    assert all(json.dumps(r).find(PAN) == -1 for r in records)
    without_9006 = [r for r in records if r["data"]["transaction_id"] != "9006"]
    assert without_9006 == _expected(expected_good, "EUR", timedelta(days=7))
    reasons = sorted(f"{r['field']}:{r['reason']}" for r in rejects)
    assert reasons == sorted([reason for _, reason in BAD_HANDBOOK] +
                             ["transaction_id:duplicate_id",
                              "transaction_id:conflicting_duplicate_id"])  # fmt: skip
    assert PAN not in (tmp_path / "rejects.csv").read_text()
    assert PAN not in output
    assert "rejected             8" in output


def test_handbook_events_are_in_time_order(tmp_path: Path) -> None:
    good = _good_rows(seed=3, n=120)
    lines = [_handbook_row(r) for r in reversed(good)]
    path = tmp_path / "h.csv"
    _write(path, HANDBOOK, lines)
    code, output, records, _ = _run(tmp_path, str(path), "--layout", "handbook",
                                    "--label-delay", "36h")  # fmt: skip
    assert code == 0, output
    times = [datetime.fromisoformat(r["at"]) for r in records]
    assert times == sorted(times)
    assert records == _expected(good, "EUR", timedelta(hours=36))


def _ieee_row(row: dict[str, object], origin: datetime) -> dict[str, object]:
    at = row["at"]
    assert isinstance(at, datetime)
    return {"TransactionID": row["id"], "isFraud": int(bool(row["fraud"])),
            "TransactionDT": int((at - origin).total_seconds()),
            "TransactionAmt": f"{row['amount']}00000000001",  # float noise in the export
            "ProductCD": row["merchant"], "card1": row["card"],
            "card2": "", "addr1": ""}  # fmt: skip


def test_ieee_cis_layout_with_second_offsets(tmp_path: Path) -> None:
    origin = datetime(2018, 3, 1, tzinfo=UTC)
    good = _good_rows(seed=11, n=200)
    lines = [_ieee_row(r, origin) for r in good]
    random.Random(2).shuffle(lines)
    bad = [{**lines[0], "TransactionID": "8001", "card1": PAN},
           {**lines[0], "TransactionID": "8002", "TransactionDT": "x"},
           {**lines[0], "TransactionID": "8003", "TransactionAmt": "2000000"},
           dict(lines[3])]  # fmt: skip
    path = tmp_path / "train_transaction.csv"
    _write(path, IEEE, lines + bad)

    code, output, records, rejects = _run(tmp_path, str(path), "--layout", "ieee-cis",
                                          "--start", _z(origin), "--currency", "EUR")  # fmt: skip

    assert code == 0, output
    assert records == _expected(good, "EUR", timedelta(days=7))
    assert sorted(f"{r['field']}:{r['reason']}" for r in rejects) == sorted(
        ["card_id:pan", "timestamp:format", "amount:less_than_equal",
         "transaction_id:duplicate_id"])  # fmt: skip
    assert PAN not in (tmp_path / "rejects.csv").read_text() + output


def test_labels_from_a_second_file(tmp_path: Path) -> None:
    good = _good_rows(seed=5, n=50)
    tx_path, label_path = tmp_path / "tx.csv", tmp_path / "labels.csv"
    _write(tmp_path / "tx.csv", ["id", "ts", "card", "shop", "amt"],
           [{"id": r["id"], "ts": _z(r["at"]), "card": r["card"], "shop": r["merchant"],
             "amt": r["amount"]} for r in good])  # fmt: skip
    chosen = good[::5]
    _write(label_path, ["tx", "fraud", "when"],
           [{"tx": r["id"], "fraud": "true" if r["fraud"] else "false",
             "when": _z(r["at"] + timedelta(days=3))} for r in chosen]
           + [{"tx": "no-such-tx", "fraud": "true", "when": _z(START)}])  # fmt: skip
    code, output, records, rejects = _run(
        tmp_path, str(tx_path), "--map",
        "transaction_id=id,timestamp=ts,card_id=card,merchant_id=shop,amount=amt",
        "--currency", "USD", "--labels", str(label_path),
        "--labels-map", "transaction_id=tx,is_fraud=fraud,labeled_at=when",
    )  # fmt: skip
    assert code == 0, output
    labels = [r for r in records if r["kind"] == "label"]
    assert [(r["data"]["transaction_id"], r["data"]["is_fraud"]) for r in labels] == sorted(
        [(r["id"], r["fraud"]) for r in chosen],
        key=lambda pair: next(g["at"] for g in good if g["id"] == pair[0]),
    )
    assert [f"{r['field']}:{r['reason']}" for r in rejects] == [
        "transaction_id:unknown_transaction"
    ]


def test_a_mapping_that_names_a_missing_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    _write(path, ["a", "b"], [{"a": "1", "b": "2"}])
    code, output, records, _ = _run(tmp_path, str(path), "--layout", "handbook")
    assert code == 2
    assert "no column for" in output and "TX_AMOUNT" in output
    assert records == []


def test_evaluate_on_imported_history_prints_weeks_and_budgets(tmp_path: Path) -> None:
    good = _good_rows(seed=9, n=400)
    path = tmp_path / "h.csv"
    _write(path, HANDBOOK, [_handbook_row(r) for r in good])
    code, output, _, _ = _run(tmp_path, str(path), "--layout", "handbook")
    assert code == 0, output
    result = CliRunner().invoke(
        cli_module.cli,
        ["evaluate", str(tmp_path / "out.jsonl"), "--models", "logreg", "--baseline", "none",
         "--review-budget", "0.05", "--decline-budget", "0.01"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    weekly = result.output.split("AP per week")[1].split("at budgets")[0].strip().splitlines()[2:]
    weeks = [line.split() for line in weekly]
    assert sum(int(w[1].replace(",", "")) for w in weeks) == len(good)
    assert sum(int(w[2].replace(",", "")) for w in weeks) == sum(bool(r["fraud"]) for r in good)
    assert "at budgets review 5.00%, decline 1.00%" in result.output


def test_an_unknown_layout_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    _write(path, ["a"], [{"a": "1"}])
    code, output, _, _ = _run(tmp_path, str(path), "--layout", "kaggle")
    assert code == 2
    assert "unknown layout 'kaggle' (known: handbook, ieee-cis)" in " ".join(output.split())
