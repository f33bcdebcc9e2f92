"""Streams as JSON Lines files: one record per line, in event-time order.

>>> import io, tempfile, pathlib
>>> from simulator.records import Record
>>> path = pathlib.Path(tempfile.mkdtemp()) / "s.jsonl"
>>> rec = Record("label", "2026-01-02T00:00:00Z", {"transaction_id": "tx_1", "is_fraud": False,
...              "labeled_at": "2026-01-02T00:00:00Z", "source": "review"})
>>> write_jsonl([rec, rec], path)
2
>>> [r.kind for r in read_jsonl(path)]
['label', 'label']
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from simulator.records import Record

_CHUNK = 2048


class JsonlError(ValueError):
    """A line of a stream file is not a valid record; says which line and why."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        super().__init__(f"{path}, line {line}: {reason}")
        self.path, self.line, self.reason = str(path), line, reason


def write_jsonl(
    records: Iterable[Record], out: Path | str | IO[str], *, truth_out: Path | str | None = None
) -> int:
    """Write ``records`` (one JSON line each); with ``truth_out``, also each transaction's truth.

    Returns the number of records written.
    """
    if isinstance(out, Path | str):
        with open(out, "w", encoding="utf-8") as handle:
            return write_jsonl(records, handle, truth_out=truth_out)
    truth_file = open(truth_out, "w", encoding="utf-8") if truth_out is not None else None  # noqa: SIM115
    written = 0
    try:
        iterator = iter(records)
        while chunk := list(itertools.islice(iterator, _CHUNK)):
            out.write("".join(record.to_json() + "\n" for record in chunk))
            if truth_file is not None:
                truth_file.write(
                    "".join(truth_line(r) + "\n" for r in chunk if r.truth is not None)
                )
            written += len(chunk)
    finally:
        if truth_file is not None:
            truth_file.close()
    return written


def truth_line(record: Record) -> str:
    """``{"transaction_id", "at", "is_fraud", "scenario"}`` of a transaction record."""
    assert record.truth is not None
    return json.dumps(
        {
            "transaction_id": record.transaction_id,
            "at": record.at,
            "is_fraud": record.truth.is_fraud,
            "scenario": record.truth.scenario,
        },
        separators=(",", ":"),
    )


def read_jsonl(path: Path | str) -> Iterator[Record]:
    """Records of a stream file, lazily; blank lines are skipped.

    Raises :class:`JsonlError` (with the line number) on the first malformed line and
    ``OSError`` if the file cannot be read.
    """
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield Record.from_json(line)
            except ValueError as exc:
                raise JsonlError(path, number, str(exc)) from None


def count_records(path: Path | str) -> int:
    """Non-blank lines of a stream file (for a progress bar's total)."""
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())
