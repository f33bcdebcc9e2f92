"""Core room: lists in bulk — CSV import (validated row by row, all or nothing) and export.

The file has a header naming ``entity,value,kind,reason`` and optionally ``expires_at``
(RFC 3339 with an offset, in the future), in any order. Every row is checked as ``POST
/v1/lists`` checks one entry (:func:`app.core.lists.value_problem`, a reason of 1 to 500
characters holding no card number, a live twin in the same file); one bad row refuses the
whole file, and the refusal names each bad row and column with an error type — never the
value, so a card number in the file is not echoed back.

Export writes the same columns. A reason that a spreadsheet would read as a formula (it
starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is written with a leading
``'``; import strips that one quote again, so an export imports back unchanged.

>>> from datetime import UTC, datetime
>>> now = datetime(2026, 1, 1, tzinfo=UTC)
>>> rows = parse("entity,value,kind,reason\\r\\ncard,tok_1,block,=stolen\\r\\n", "ops", now)
>>> [(e.entity, e.value, e.kind, e.reason) for e in rows]
[('card', 'tok_1', 'block', '=stolen')]
>>> to_csv(rows).splitlines()[1]
"card,tok_1,block,'=stolen,"
>>> try:
...     parse("entity,value,kind,reason\\ncard,4111111111111111,block,x\\n", "ops", now)
... except CsvRefused as exc:
...     exc.errors
[{'loc': ['body', '2', 'value'], 'type': 'pan'}]
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from app.core.lists import ENTITIES, KINDS, Entity, Kind, ListEntry, value_problem
from features.schema import clean_text, looks_like_pan

REQUIRED = ("entity", "value", "kind", "reason")
COLUMNS = (*REQUIRED, "expires_at")
MAX_ROWS = 10_000
MAX_REASON = 500
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class CsvRefused(ValueError):
    """The file is refused; ``errors`` name rows (as text; "1" = the header) and columns, with
    a type."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} error(s)")
        self.errors = errors


def parse(text: str, by: str, now: datetime, max_rows: int = MAX_ROWS) -> list[ListEntry]:
    """Every row as a :class:`ListEntry` created ``now`` by ``by``; :class:`CsvRefused` when
    any row (or the header) is wrong."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error:  # a malformed file (no row or value of it is echoed)
        raise CsvRefused([{"loc": ["body"], "type": "csv"}]) from None
    reader = iter(rows)
    header = [name.strip() for name in next(reader, [])]
    if any(c not in header for c in REQUIRED) or any(h not in COLUMNS for h in header):
        raise CsvRefused([{"loc": ["body", "1"], "type": "header"}])
    entries, errors, seen = [], [], set()
    for number, row in enumerate(reader, start=2):
        if number - 1 > max_rows:
            raise CsvRefused([{"loc": ["body", str(number)], "type": "too_many_rows"}])
        if not any(cell.strip() for cell in row):
            continue  # a blank line (a trailing one, say)
        if len(row) != len(header):
            errors.append({"loc": ["body", str(number)], "type": "columns"})
            continue
        fields = dict(zip(header, row, strict=True))
        problems = _problems(fields, now)
        key = (fields["entity"], fields["value"], fields["kind"])
        if not problems and key in seen:
            problems = [("value", "duplicate")]
        seen.add(key)
        errors += [{"loc": ["body", str(number), col], "type": kind} for col, kind in problems]
        if not problems:
            entries.append(_entry(fields, by, now))
    if errors:
        raise CsvRefused(errors)
    return entries


def _problems(fields: dict[str, str], now: datetime) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if fields["entity"] not in ENTITIES:
        out.append(("entity", "entity"))
    elif (problem := value_problem(fields["entity"], fields["value"])) is not None:
        out.append(("value", problem))
    if fields["kind"] not in KINDS:
        out.append(("kind", "kind"))
    reason = _unquote(fields["reason"])
    if not 1 <= len(reason) <= MAX_REASON:
        out.append(("reason", "length"))
    elif looks_like_pan(reason):
        out.append(("reason", "pan"))
    else:
        try:
            clean_text(reason)
        except ValueError as exc:
            out.append(("reason", str(exc)))
    expires = fields.get("expires_at", "")
    if expires:
        moment = _moment(expires)
        if moment is None:
            out.append(("expires_at", "datetime"))
        elif moment <= now:
            out.append(("expires_at", "past"))
    return out


def _moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _entry(fields: dict[str, str], by: str, now: datetime) -> ListEntry:
    expires = fields.get("expires_at", "")
    return ListEntry(
        entity=cast(Entity, fields["entity"]),
        value=fields["value"],
        kind=cast(Kind, fields["kind"]),
        reason=_unquote(fields["reason"]),
        created_at=now,
        created_by=by,
        expires_at=_moment(expires) if expires else None,
    )


def _unquote(reason: str) -> str:
    return reason[1:] if reason.startswith("'") and reason[1:].startswith(_FORMULA) else reason


def to_csv(entries: Iterable[ListEntry]) -> str:
    """The entries as CSV with a header (formula-looking reasons quoted, see above)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for e in entries:
        reason = "'" + e.reason if e.reason.startswith(_FORMULA) else e.reason
        expires = e.expires_at.isoformat() if e.expires_at is not None else ""
        writer.writerow((e.entity, e.value, e.kind, reason, expires))
    return out.getvalue()
