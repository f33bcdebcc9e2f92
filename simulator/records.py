"""One line of a simulated stream: a transaction (with its ground truth) or a label.

``data`` is exactly the wire JSON the service reads; ``truth`` is for evaluation only.

>>> record = Record("label", "2026-01-02T00:00:00.000Z",
...                 {"transaction_id": "tx_7_000000001", "is_fraud": True,
...                  "labeled_at": "2026-01-02T00:00:00.000Z", "source": "review"})
>>> line = record.to_json()
>>> line[:45]
'{"kind":"label","at":"2026-01-02T00:00:00.000'
>>> Record.from_json(line) == record
True
>>> record.transaction_id, record.event_time.isoformat()
('tx_7_000000001', '2026-01-02T00:00:00+00:00')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

Kind = Literal["transaction", "label"]
KINDS: tuple[Kind, ...] = ("transaction", "label")
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


@dataclass(frozen=True, slots=True)
class Truth:
    """What really happened: fraud or not, and which scenario (``None`` for genuine)."""

    is_fraud: bool
    scenario: str | None


@dataclass(frozen=True, slots=True)
class Record:
    """A stream record; ``at`` is its RFC 3339 event time (a label's ``labeled_at``)."""

    kind: Kind
    at: str
    data: dict[str, Any]
    truth: Truth | None = None

    @property
    def transaction_id(self) -> str:
        return str(self.data["transaction_id"])

    @property
    def event_time(self) -> datetime:
        return datetime.fromisoformat(self.at)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the record (a transaction's truth included)."""
        out: dict[str, Any] = {"kind": self.kind, "at": self.at, "data": self.data}
        if self.truth is not None:
            out["truth"] = {"is_fraud": self.truth.is_fraud, "scenario": self.truth.scenario}
        return out

    def to_json(self) -> str:
        """One compact JSON line (without the newline)."""
        return _dumps(self.to_dict())

    def payload(self) -> bytes:
        """The wire body: ``data`` as compact JSON bytes."""
        return _dumps(self.data).encode()

    @classmethod
    def from_json(cls, line: str | bytes) -> Record:
        """Parse one line; ``ValueError`` says what is wrong (never echoing the line)."""
        try:
            raw = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError("not valid JSON") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: object) -> Record:
        """Build from a parsed JSON object, checking its shape."""
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        kind, at, data = raw.get("kind"), raw.get("at"), raw.get("data")
        if kind not in KINDS:
            raise ValueError("kind must be 'transaction' or 'label'")
        if not isinstance(at, str) or not isinstance(data, dict):
            raise ValueError("'at' must be a string and 'data' an object")
        if not isinstance(data.get("transaction_id"), str):
            raise ValueError("data.transaction_id must be a string")
        return cls(cast(Kind, kind), at, data, _truth(raw.get("truth")))


def _truth(raw: object) -> Truth | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("is_fraud"), bool):
        raise ValueError("truth must be an object with a boolean is_fraud")
    scenario = raw.get("scenario")
    if scenario is not None and not isinstance(scenario, str):
        raise ValueError("truth.scenario must be a string or null")
    return Truth(raw["is_fraud"], scenario)
