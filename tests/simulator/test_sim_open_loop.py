"""Open-loop replay of a split (``Split(rate=...)``): the schedule and the latency accounting.

The replay runs on an event loop with virtual time: when every task waits, the loop's clock
jumps to the next timer instead of sleeping. ``asyncio.sleep`` in the fake sinks is then exact
service time, and every figure below is computed, not measured on the wall clock.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import pytest

from simulator.records import Record
from simulator.replay import ReplaySummary, Split, replay, share_of
from simulator.sinks import Delivery


class _VirtualSelector(selectors.DefaultSelector):
    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self.clock = clock

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if not ready and timeout is not None and timeout > 0:
            self.clock[0] += timeout  # nothing to do until the next timer: jump to it
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.clock = [0.0]
        super().__init__(_VirtualSelector(self.clock))

    def time(self) -> float:
        return self.clock[0]


def run_virtual(work: Coroutine[Any, Any, ReplaySummary]) -> ReplaySummary:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(work)
    finally:
        loop.close()


class ServerSink:
    """One server, one request at a time (FIFO), ``service_s`` each; logs when it starts each."""

    def __init__(self, name: str, service_s: float) -> None:
        self.name, self.service_s = name, service_s
        self.started: list[tuple[float, Record]] = []
        self.busy: asyncio.Lock | None = None

    async def __aenter__(self) -> Self:
        self.busy = asyncio.Lock()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def send(self, record: Record) -> Delivery:
        assert self.busy is not None
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        async with self.busy:
            self.started.append((arrived, record))
            await asyncio.sleep(self.service_s)
        return "accepted", "ok"


def _ids(share: float, n: int, inside: bool) -> list[str]:
    """``n`` transaction ids that fall inside (or outside) a split of ``share``."""
    found = (f"tx_{i}" for i in range(100_000))
    return [t for t in found if (share_of(t) < share) == inside][:n]


def _tx(tx_id: str, minute: int) -> Record:
    moment = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minute)
    data = {"transaction_id": tx_id, "card_id": "c1", "timestamp": moment.isoformat()}
    return Record("transaction", moment.isoformat(), data)


def _label(tx_id: str, minute: int) -> Record:
    moment = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minute)
    data = {"transaction_id": tx_id, "is_fraud": False, "labeled_at": moment.isoformat()}
    return Record("label", moment.isoformat(), data)


async def _replay(records: list[Record], rest: ServerSink, other: ServerSink) -> ReplaySummary:
    async with rest, other:
        return await replay(records, other, split=Split(rest, 0.5, rate=100.0))


def test_a_slow_server_queues_and_the_queueing_is_counted() -> None:
    # 100 req/s (one due every 10 ms) to a server needing 20 ms each: request k is due at
    # 10k ms, starts when k earlier ones are done (20k ms), is answered at 20(k + 1) ms.
    ids = _ids(0.5, 10, inside=True)
    rest, other = ServerSink("http", 0.020), ServerSink("kafka", 0.0)
    summary = run_virtual(_replay([_tx(t, i) for i, t in enumerate(ids)], rest, other))
    expected = [20.0 * (k + 1) - 10.0 * k for k in range(10)]
    assert summary.split_latencies_ms == pytest.approx(expected)
    # open loop: each request left on its schedule, not when the previous one was answered
    assert [when for when, _ in rest.started] == pytest.approx([0.01 * k for k in range(10)])
    # a closed-loop measurement (from the actual send) would have hidden the queue
    assert max(summary.split_latencies_ms) == pytest.approx(110.0)


def test_a_fast_server_answers_every_request_in_its_service_time() -> None:
    ids = _ids(0.5, 8, inside=True)
    rest, other = ServerSink("http", 0.004), ServerSink("kafka", 0.0)
    summary = run_virtual(_replay([_tx(t, i) for i, t in enumerate(ids)], rest, other))
    assert summary.split_latencies_ms == pytest.approx([4.0] * 8)
    assert summary.elapsed_s == pytest.approx(0.07 + 0.004)


def test_labels_take_a_slot_in_the_schedule_but_have_no_latency() -> None:
    (a, b) = _ids(0.5, 2, inside=True)
    records = [_tx(a, 0), _label(a, 1), _tx(b, 2)]
    rest, other = ServerSink("http", 0.001), ServerSink("kafka", 0.0)
    summary = run_virtual(_replay(records, rest, other))
    assert [(r.kind, when) for when, r in rest.started] == [
        ("transaction", pytest.approx(0.0)),
        ("label", pytest.approx(0.01)),
        ("transaction", pytest.approx(0.02)),
    ]
    assert summary.split_latencies_ms == pytest.approx([1.0, 1.0])


def test_the_other_records_never_run_ahead_of_the_schedule() -> None:
    inside, outside = _ids(0.5, 3, inside=True), _ids(0.5, 3, inside=False)
    # stream order: in0, out0, in1, out1, in2, out2
    records = [
        _tx(t, i)
        for i, t in enumerate(x for pair in zip(inside, outside, strict=True) for x in pair)
    ]
    rest, other = ServerSink("http", 0.0), ServerSink("kafka", 0.0)
    summary = run_virtual(_replay(records, rest, other))
    sent_at = {r.transaction_id: when for when, r in other.started}
    # out_k follows in_k (due at 10k ms) at once, and never before it
    assert [sent_at[t] for t in outside] == pytest.approx([0.0, 0.01, 0.02])
    assert summary.outcomes["transaction"]["accepted"] == 6
    assert len(summary.split_latencies_ms) == 3


def test_a_split_rate_excludes_a_pacing_and_must_be_positive() -> None:
    from simulator.replay import Pacing

    with pytest.raises(ValueError, match="positive"):
        Split(ServerSink("http", 0.0), 0.5, rate=0.0)

    async def both() -> ReplaySummary:
        split = Split(ServerSink("http", 0.0), 0.5, rate=10.0)
        return await replay([], ServerSink("kafka", 0.0), split=split, pacing=Pacing(rate=1.0))

    with pytest.raises(ValueError, match="paces the replay"):
        run_virtual(both())
