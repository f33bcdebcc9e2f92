"""The backfill's two lanes end: a stream whose last records are transactions after its last
label, still in flight when the last label batch is formed (the label lane must not wait for
them forever). The service is a small fake of riverguard's own REST protocol (httpx's mock
transport): transactions answer slowly, label batches at once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.tools import backfill as bf
from simulator.records import Record

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _stream() -> list[Record]:
    records = []
    for i in range(6):
        tx = {"transaction_id": f"t{i}", "card_id": f"c{i}", "merchant_id": f"m{i}",
              "amount": 10.0, "currency": "EUR", "timestamp": _at(i)}  # fmt: skip
        records.append(Record("transaction", _at(i), tx))
        if i == 1:  # one label early on; four transactions after it end the stream
            label = {"transaction_id": "t0", "is_fraud": False, "labeled_at": _at(i),
                     "source": "chargeback"}  # fmt: skip
            records.append(Record("label", _at(i), label))
    return records


async def _service(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/v1/labels/batch":
        labels = json.loads(request.content)
        return httpx.Response(200, json={"labels": [{"status": "learned"} for _ in labels]})
    if json.loads(request.content)["transaction_id"] not in {"t0", "t1"}:
        await asyncio.sleep(0.2)  # the transactions after the label are stored later
    return httpx.Response(200, json={"replayed": False})


async def test_the_backfill_ends_when_transactions_follow_the_last_label(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = httpx.AsyncClient

    def client(**kwargs: object) -> httpx.AsyncClient:
        return real(transport=httpx.MockTransport(_service), **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(bf.httpx, "AsyncClient", client)
    records = _stream()
    path = tmp_path / "history.jsonl"
    path.write_text("".join(r.to_json() + "\n" for r in records))
    progress = bf.Progress(path)
    target = bf.Target("http://scorer", "http://learner", "key", concurrency=8)
    # a lane that waits forever would hang the test: fail it after a generous bound instead
    outcome = await asyncio.wait_for(bf.backfill(records, target, progress), timeout=60)
    assert outcome.transactions == {"scored": 6}
    assert outcome.labels == {"learned": 1}
    assert progress.load(len(records)) == len(records)
