"""How a scored record is packed into the compact columns and rebuilt from them.

The canonical payload loses the fields that are columns of their own; the stored answer is
rebuilt from the score columns; every model's score (and a stacked model's member scores) is
one float per entry of a *lineup* stored once. :class:`PgRepository` checks, before writing,
that the rebuild is byte-identical, and stores the original as it is otherwise.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import orjson

from app.core.decisions import WARMING_UP
from app.core.ports import ScoredRecord
from features.schema import DecidedBy, ModelRef, Score, ShadowScore

_PAYLOAD_COLUMNS = ("transaction_id", "card_id", "merchant_id", "timestamp")
#: The payload's other fields, in canonical (sorted) order. Since migration 012 payload_rest
#: holds their values as a JSON array in this order (null: absent — canonical JSON never holds
#: a null; trailing absent ones left out) instead of an object that repeats every name in every
#: row (≈ 85 B a transaction). A row written before, an object, still reads. Append new fields
#: at the end only: stored arrays are positional.
REST_FIELDS = ("amount", "channel", "country", "currency", "customer_id", "device_id", "lat",
               "lon", "merchant_category")  # fmt: skip
_LEARNED = struct.Struct(">i")


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()  # NaN/inf are impossible here: orjson writes null


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


class UnknownFeatureSet(LookupError):
    """A stored row names a feature set whose order this database does not record."""


def pack_payload(record: ScoredRecord) -> tuple[str | None, str | None]:
    """(payload_rest, verbatim payload): the rest when it rebuilds the payload byte for byte."""
    data = orjson.loads(record.payload)
    if isinstance(data, dict):
        rest = {k: v for k, v in data.items() if k not in _PAYLOAD_COLUMNS}
        values = [rest.get(name) for name in REST_FIELDS]
        while values and values[-1] is None:
            values.pop()
        known = set(rest) <= set(REST_FIELDS) and None not in rest.values()
        packed = dumps(values) if known else dumps(rest)
        rebuilt = rebuild_payload(
            packed, record.transaction_id, record.card_id, record.merchant_id, record.event_time
        )
        if rebuilt == record.payload:
            return packed, None
    return None, record.payload


def rebuild_payload(
    rest: str, transaction_id: str, card_id: str, merchant_id: str, event_time: datetime
) -> str:
    """The canonical payload (as :meth:`Transaction.canonical_json` writes it) from its parts."""
    data = rest_fields(rest)
    data["transaction_id"] = transaction_id
    data["card_id"] = card_id
    data["merchant_id"] = merchant_id
    data["timestamp"] = event_time.astimezone(UTC).isoformat()
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


def rest_fields(rest: str, **loads: Any) -> dict[str, Any]:
    """The payload's other fields from payload_rest, either format (``loads``: json.loads
    options, e.g. ``parse_float=str``).

    >>> rest_fields('["12.5",null,"FR","EUR"]')
    {'amount': '12.5', 'country': 'FR', 'currency': 'EUR'}
    >>> rest_fields('{"amount":"12.5","currency":"EUR"}')
    {'amount': '12.5', 'currency': 'EUR'}
    """
    data = json.loads(rest, **loads) if loads else orjson.loads(rest)
    if isinstance(data, list):
        return {name: v for name, v in zip(REST_FIELDS, data, strict=False) if v is not None}
    return dict(data)


def pack_learned(learned: Sequence[int]) -> bytes:
    """Labels learned per lineup entry as 4-byte big-endian integers (int4send's bytes).

    Column learned_packed (migration 012): 1 + 4n bytes where learned int[] took 24 + 4n.

    >>> unpack_learned(pack_learned([1200, -1]))
    [1200, -1]
    """
    return b"".join(_LEARNED.pack(n) for n in learned)


def unpack_learned(packed: bytes) -> list[int]:
    return [n for (n,) in _LEARNED.iter_unpack(packed)]


def rebuild_response(
    transaction_id: str,
    score: float,
    decision: str,
    lineup: Sequence[Sequence[str]],
    scores: Sequence[float],
    reasons: str | None,
    event_time: datetime,
    scored_at: datetime,
    decided: str | None = None,
) -> str:
    """The answer as :class:`features.schema.Score` writes it, from the stored columns."""
    models = [(m, v) for m, v in zip(lineup, scores, strict=True) if not m[2].startswith(_PART)]
    lineup, scores = [m for m, _ in models], [v for _, v in models]
    (champion, champion_version, _), *challengers = lineup
    reasons_list: list[dict[str, Any]] = [] if reasons is None else orjson.loads(reasons)
    answer = Score(
        transaction_id=transaction_id,
        score=score,
        decision=decision,
        model=ModelRef(name=champion, version=champion_version),
        shadow=[
            ShadowScore(name=name, version=version, score=value)
            for (name, version, _), value in zip(challengers, scores[1:], strict=True)
        ],
        reasons=reasons_list,
        decided_by=_decided_by(decided, reasons_list),
        rule_id=decided.removeprefix("rule:") if decided and decided.startswith("rule:") else None,
        event_time=event_time.astimezone(UTC),
        scored_at=scored_at.astimezone(UTC),
        replayed=False,
    )
    return answer.model_dump_json()


def _decided_by(decided: str | None, reasons: list[dict[str, Any]]) -> DecidedBy:
    if decided is not None:
        return "rule" if decided.startswith("rule:") else "list"
    return "warmup" if any(r["code"] == WARMING_UP for r in reasons) else "model"


Lineup = tuple[tuple[str, str, str], ...]  # (name, version, role) per model, champion first
#: role prefix of a stacked model's member score in a lineup: ``part:<stacked model>``
_PART = "part:"


def flatten_scores(stored: Sequence[dict[str, Any]]) -> tuple[Lineup, list[float]]:
    """Scores as stored by the core (a stack's member scores nested under ``parts``) as one
    lineup and one array: each model, then each part as ``(member, "", "part:<model>")``."""
    lineup: list[tuple[str, str, str]] = []
    values: list[float] = []
    for s in stored:
        lineup.append((str(s["name"]), str(s["version"]), str(s["role"])))
        values.append(float(s["score"]))
    for s in stored:
        for member, value in (s.get("parts") or {}).items():
            lineup.append((str(member), "", _PART + str(s["name"])))
            values.append(float(value))
    return tuple(lineup), values


def nest_scores(lineup: Lineup, values: Sequence[float]) -> list[dict[str, Any]]:
    """The inverse of :func:`flatten_scores`."""
    scores: list[dict[str, Any]] = [
        {"name": name, "version": version, "score": value, "role": role}
        for (name, version, role), value in zip(lineup, values, strict=True)
        if not role.startswith(_PART)
    ]
    by_name = {s["name"]: s for s in scores}
    for (member, _, role), value in zip(lineup, values, strict=True):
        if role.startswith(_PART):
            parts: dict[str, float] = by_name[role.removeprefix(_PART)].setdefault("parts", {})
            parts[member] = float(value)
    return scores


def partition_day(name: str) -> date | None:
    """The UTC day of a partition named scored_transactions_pYYYYMMDD (None: the default)."""
    stem = name.rpartition("_p")[2]
    if len(stem) != 8 or not stem.isdigit():
        return None
    return date(int(stem[:4]), int(stem[4:6]), int(stem[6:]))


def split_versions(lineup: Lineup) -> tuple[Lineup, list[int]]:
    """(lineup with definition versions, labels learned per entry; -1: not of that form).

    >>> split_versions((("blend", "3.1200", "champion"), ("arf", "", "part:stack")))
    ((('blend', '3', 'champion'), ('arf', '', 'part:stack')), [1200, -1])
    """
    stored, learned = [], []
    for name, version, role in lineup:
        base, dot, count = version.rpartition(".")
        if dot and base and count.isdigit() and str(int(count)) == count:
            stored.append((name, base, role))
            learned.append(int(count))
        else:
            stored.append((name, version, role))
            learned.append(-1)
    return tuple(stored), learned


def join_versions(stored: Lineup, learned: Sequence[int] | None) -> Lineup:
    """The inverse of :func:`split_versions` (rows written before migration 004: as stored)."""
    if learned is None:
        return stored
    return tuple(
        (name, version if count < 0 else f"{version}.{count}", role)
        for (name, version, role), count in zip(stored, learned, strict=True)
    )
