"""Turn a team's labelled history (CSV rows) into the project's own record stream.

Each row becomes a transaction :class:`~simulator.records.Record`, validated exactly like a live
transaction (the same decoder the REST and Kafka paths use), and, when it carries a fraud flag,
a label record at its label time. A row that cannot be imported is *rejected*: counted by
reason and listed (row number, part, field, reason — never the value, so no card number is
copied). The output is sorted by event time, so unsorted exports import the same as sorted ones.

>>> spec = ImportSpec(mapping={"transaction_id": "id", "card_id": "card", "merchant_id": "m",
...     "amount": "amt", "timestamp": "ts", "is_fraud": "fraud"}, currency="EUR",
...     label_delay=parse_duration("7d"))
>>> rows = [{"id": "t2", "card": "c1", "m": "m1", "amt": "10.5", "ts": "2024-01-02T00:00:00Z",
...          "fraud": "1"},
...         {"id": "t1", "card": "4111111111111111", "m": "m1", "amt": "3",
...          "ts": "2024-01-01T00:00:00Z", "fraud": "0"}]
>>> result = import_rows(rows, spec)
>>> [(r.kind, r.transaction_id, r.at) for r in result.records]
[('transaction', 't2', '2024-01-02T00:00:00Z'), ('label', 't2', '2024-01-09T00:00:00Z')]
>>> dict(result.rejected), result.rejects[0]
({'card_id:pan': 1}, Reject(row=2, part='transaction', field='card_id', reason='pan'))
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from features.schema import LabelSource, Problem, decode_label, decode_transaction
from simulator.records import Record

TX_FIELDS = (
    "transaction_id", "card_id", "merchant_id", "amount", "currency", "timestamp",
    "merchant_category", "country", "channel", "lat", "lon", "device_id", "customer_id",
)  # fmt: skip
LABEL_FIELDS = ("is_fraud", "labeled_at")
REQUIRED = ("transaction_id", "card_id", "merchant_id", "amount", "timestamp")
_NUMERIC = frozenset({"amount", "lat", "lon"})
_TRUE = frozenset({"1", "1.0", "true", "t", "yes", "y"})
_FALSE = frozenset({"0", "0.0", "false", "f", "no", "n"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_CENT = Decimal("0.0001")  # the wire format's precision (4 decimal places)


class ImportError_(ValueError):
    """The import cannot start (a mapping names a column the file lacks, a bad option)."""


@dataclass(frozen=True)
class Reject:
    """One part of one row that was not imported; never holds the row's values."""

    row: int
    part: str  # "transaction" or "label"
    field: str
    reason: str


@dataclass(frozen=True)
class ImportSpec:
    """How a file's columns become wire records.

    ``mapping`` maps our field names to column names; a value starting with ``=`` is a
    constant (``"merchant_id": "=unknown"``). ``timestamps`` is ``iso`` (naive values read in
    ``timezone``), ``epoch`` (seconds), ``epoch_ms`` or ``offset`` (seconds after ``start``).
    """

    mapping: Mapping[str, str]
    timestamps: str = "iso"
    start: datetime | None = None
    timezone: tzinfo = UTC
    currency: str | None = None
    label_delay: timedelta | None = None
    label_source: LabelSource = "chargeback"
    now: datetime | None = None  # validation clock (defaults to the wall clock)


@dataclass
class ImportResult:
    """The sorted records, every reject, and counts by reason."""

    records: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    rows: int = 0
    transactions: int = 0
    labels: int = 0
    labels_not_yet_known: int = 0  # label time after the validation clock: not yet an outcome


def parse_mapping(text: str) -> dict[str, str]:
    """``"transaction_id=TX_ID,card_id=CUST"`` → a mapping; unknown field names refused.

    >>> parse_mapping("card_id=CUSTOMER_ID, merchant_id==shop")
    {'card_id': 'CUSTOMER_ID', 'merchant_id': '=shop'}
    """
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, column = item.partition("=")
        name = name.strip()
        if not sep or not column.strip():
            raise ImportError_(f"mapping entry {item!r} is not field=COLUMN")
        if name not in (*TX_FIELDS, *LABEL_FIELDS):
            known = ", ".join((*TX_FIELDS, *LABEL_FIELDS))
            raise ImportError_(f"unknown field {name!r} in the mapping (known: {known})")
        mapping[name] = column.strip()
    return mapping


def parse_duration(text: str) -> timedelta:
    """``7d``, ``36h``, ``90m``, ``2w``, ``30s`` → a timedelta.

    >>> parse_duration("36h")
    datetime.timedelta(days=1, seconds=43200)
    """
    match = _DURATION.match(text)
    if match is None:
        raise ImportError_(f"duration {text!r} is not like 7d, 36h, 90m, 2w or 30s")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def check_columns(spec: ImportSpec, columns: Iterable[str]) -> None:
    """Refuse a mapping that names a column the file does not have (before reading rows)."""
    present = set(columns)
    missing = [
        f"{name}={column}"
        for name, column in spec.mapping.items()
        if not column.startswith("=") and column not in present
    ]
    if missing:
        raise ImportError_(
            f"the file has no column for {', '.join(missing)}; "
            f"its columns: {', '.join(sorted(present))}"
        )
    absent = [n for n in REQUIRED if n not in spec.mapping]
    if absent or ("currency" not in spec.mapping and spec.currency is None):
        need = absent + ([] if spec.currency or "currency" in spec.mapping else ["currency"])
        raise ImportError_(f"map these fields (--map or --currency): {', '.join(need)}")
    if spec.timestamps == "offset" and spec.start is None:
        raise ImportError_("offset timestamps need --start (an RFC 3339 time)")


def parse_time(value: str, spec: ImportSpec) -> datetime:
    """One timestamp cell in the spec's format → an aware datetime (``ValueError`` if not)."""
    text = value.strip()
    if spec.timestamps == "iso":
        moment = datetime.fromisoformat(text.replace("z", "Z"))
        return moment.replace(tzinfo=spec.timezone) if moment.tzinfo is None else moment
    seconds = float(text)
    if not math.isfinite(seconds):
        raise ValueError("not finite")
    if spec.timestamps == "epoch":
        return datetime.fromtimestamp(seconds, UTC)
    if spec.timestamps == "epoch_ms":
        return datetime.fromtimestamp(seconds / 1000, UTC)
    assert spec.start is not None  # checked by check_columns
    return spec.start + timedelta(seconds=seconds)


def rfc3339(moment: datetime) -> str:
    """UTC, ``Z``, no more precision than the value has."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def import_rows(
    rows: Iterable[Mapping[str, str | None]],
    spec: ImportSpec,
    labels: Iterable[Mapping[str, str | None]] | None = None,
    label_spec: ImportSpec | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Validate and convert ``rows`` (and an optional second file of ``labels``)."""
    result = ImportResult()
    now = spec.now or datetime.now(UTC)
    keyed: list[tuple[datetime, int, int, Record]] = []
    seen: dict[str, tuple[str, datetime]] = {}
    for number, row in enumerate(rows, start=1):
        result.rows += 1
        _one_row(number, row, spec, now, result, keyed, seen)
        if progress is not None:
            progress(number)
    if labels is not None:
        for number, row in enumerate(labels, start=1):
            _label_row(number, row, label_spec or spec, now, result, keyed, seen)
    keyed.sort(key=lambda item: item[:3])
    result.records = [record for *_, record in keyed]
    return result


def _reject(result: ImportResult, row: int, part: str, where: str, reason: str) -> None:
    result.rejects.append(Reject(row, part, where, reason))
    result.rejected[f"{where}:{reason}" if where else reason] += 1


def _cell(row: Mapping[str, str | None], column: str) -> str | None:
    if column.startswith("="):
        return column[1:]
    value = row.get(column)
    return None if value is None or value.strip() == "" else value.strip()


def _one_row(
    number: int,
    row: Mapping[str, str | None],
    spec: ImportSpec,
    now: datetime,
    result: ImportResult,
    keyed: list[tuple[datetime, int, int, Record]],
    seen: dict[str, tuple[str, datetime]],
) -> None:
    data, problem = _transaction_data(row, spec)
    if problem is not None:
        _reject(result, number, "transaction", *problem)
        return
    record = Record("transaction", "", data)
    try:
        tx = decode_transaction(record.payload(), now=now)
    except Problem as exc:
        first = exc.errors[0] if exc.errors else {"loc": [], "type": exc.reason}
        _reject(result, number, "transaction", ".".join(first["loc"]), str(first["type"]))
        return
    previous = seen.get(tx.transaction_id)
    if previous is not None:
        same = previous[0] == tx.canonical_json()
        _reject(result, number, "transaction", "transaction_id",
                "duplicate_id" if same else "conflicting_duplicate_id")  # fmt: skip
        return
    seen[tx.transaction_id] = (tx.canonical_json(), tx.timestamp)
    at = rfc3339(tx.timestamp)
    keyed.append((tx.timestamp, 0, number, Record("transaction", at, {**data, "timestamp": at})))
    result.transactions += 1
    _row_label(number, row, spec, tx.transaction_id, tx.timestamp, now, result, keyed)


def _transaction_data(
    row: Mapping[str, str | None], spec: ImportSpec
) -> tuple[dict[str, Any], None] | tuple[dict[str, Any], tuple[str, str]]:
    data: dict[str, Any] = {}
    if spec.currency is not None and "currency" not in spec.mapping:
        data["currency"] = spec.currency
    for name in TX_FIELDS:
        column = spec.mapping.get(name)
        value = None if column is None else _cell(row, column)
        if value is None:
            if name in REQUIRED:
                return data, (name, "missing")
            continue
        try:
            data[name] = _convert(name, value, spec)
        except (ValueError, InvalidOperation, OverflowError):
            return data, (name, "format")
    return data, None


def _convert(name: str, value: str, spec: ImportSpec) -> Any:
    if name == "timestamp":
        return rfc3339(parse_time(value, spec))
    if name == "amount":
        amount = Decimal(value)
        if not amount.is_finite():
            raise ValueError("not finite")
        # The wire keeps 4 decimal places; exports often carry float noise (57.950000000000003).
        return float(amount.quantize(_CENT, rounding=ROUND_HALF_EVEN))
    if name in _NUMERIC:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError("not finite")
        return number
    if name == "channel":
        return value.lower()
    return value


def _row_label(
    number: int,
    row: Mapping[str, str | None],
    spec: ImportSpec,
    tx_id: str,
    timestamp: datetime,
    now: datetime,
    result: ImportResult,
    keyed: list[tuple[datetime, int, int, Record]],
) -> None:
    column = spec.mapping.get("is_fraud")
    flag = None if column is None else _cell(row, column)
    if flag is None:
        return
    when_column = spec.mapping.get("labeled_at")
    when_text = None if when_column is None else _cell(row, when_column)
    _add_label(number, tx_id, flag, when_text, timestamp, spec, now, result, keyed)


def _add_label(
    number: int,
    tx_id: str,
    flag: str,
    when_text: str | None,
    timestamp: datetime,
    spec: ImportSpec,
    now: datetime,
    result: ImportResult,
    keyed: list[tuple[datetime, int, int, Record]],
) -> None:
    lowered = flag.strip().lower()
    if lowered not in _TRUE | _FALSE:
        _reject(result, number, "label", "is_fraud", "not_a_boolean")
        return
    try:
        if when_text is not None:
            labeled_at = parse_time(when_text, spec)
        elif spec.label_delay is not None:
            labeled_at = timestamp + spec.label_delay
        else:
            raise ImportError_("labels need a label time: --label-delay or a labeled_at column")
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, ImportError_):
            raise
        _reject(result, number, "label", "labeled_at", "format")
        return
    if labeled_at < timestamp:
        _reject(result, number, "label", "labeled_at", "before_transaction")
        return
    if labeled_at > now:
        result.labels_not_yet_known += 1
        return
    at = rfc3339(labeled_at)
    data = {"transaction_id": tx_id, "is_fraud": lowered in _TRUE, "labeled_at": at,
            "source": spec.label_source}  # fmt: skip
    record = Record("label", at, data)
    try:
        decode_label(record.payload(), now=now)
    except Problem as exc:
        first = exc.errors[0] if exc.errors else {"loc": [], "type": exc.reason}
        _reject(result, number, "label", ".".join(first["loc"]), str(first["type"]))
        return
    keyed.append((labeled_at, 1, number, record))
    result.labels += 1


def _label_row(
    number: int,
    row: Mapping[str, str | None],
    spec: ImportSpec,
    now: datetime,
    result: ImportResult,
    keyed: list[tuple[datetime, int, int, Record]],
    seen: dict[str, tuple[str, datetime]],
) -> None:
    id_column = spec.mapping.get("transaction_id", "transaction_id")
    flag_column = spec.mapping.get("is_fraud", "is_fraud")
    tx_id, flag = _cell(row, id_column), _cell(row, flag_column)
    if tx_id is None or flag is None:
        _reject(result, number, "label", "transaction_id" if tx_id is None else "is_fraud",
                "missing")  # fmt: skip
        return
    known = seen.get(tx_id)
    if known is None:
        _reject(result, number, "label", "transaction_id", "unknown_transaction")
        return
    when_text = _cell(row, spec.mapping.get("labeled_at", "labeled_at"))
    _add_label(number, tx_id, flag, when_text, known[1], spec, now, result, keyed)
