"""A split replayed at a fixed rate, open loop, by a bounded set of senders.

The pacing and the latency accounting run on an event loop with a virtual clock (it jumps to
the next timer instead of sleeping), so the times below are exact and no test waits for them.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from simulator.records import Record, Truth
from simulator.replay import Split, replay, share_of
from simulator.sinks import Delivery, HttpSink

T0 = datetime(2024, 3, 1, tzinfo=UTC)
T = TypeVar("T")


class _Selector(selectors.SelectSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self.loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if not ready:
            if timeout is None:
                raise RuntimeError("nothing is ready or scheduled: the test would hang")
            self.loop.now += max(timeout, 0.0)
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """``time()`` is virtual: with nothing ready, the clock jumps to the next timer."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_Selector(self))

    def time(self) -> float:
        return self.now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class SlowSink:
    """A fake sink taking ``seconds(record)`` per send; it logs (start, end) and its peak load."""

    def __init__(self, name: str, seconds: Any = 0.0) -> None:
        self.name, self.seconds = name, seconds
        self.log: list[tuple[Record, float, float]] = []
        self.in_flight = self.peak = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def send(self, record: Record) -> Delivery:
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            delay = self.seconds(record) if callable(self.seconds) else self.seconds
            await asyncio.sleep(delay)
        finally:
            self.in_flight -= 1
        self.log.append((record, start, loop.time()))
        return "accepted", "ok"


def _tx(n: int, tx_id: str | None = None) -> Record:
    tx_id = tx_id or f"tx_{n:06d}"
    data = {"transaction_id": tx_id, "card_id": f"card_{n % 7}", "amount": 1.0}
    return Record("transaction", _at(n), data, Truth(False, None))


def _label(n: int, tx_id: str) -> Record:
    data = {"transaction_id": tx_id, "is_fraud": False, "labeled_at": _at(n)}
    return Record("label", _at(n), data)


def _at(n: int) -> str:
    return (T0 + timedelta(seconds=n)).isoformat()


def _ids_routed(share: float, count: int, *, inside: bool) -> list[str]:
    """``count`` transaction ids that a split of ``share`` sends to (or away from) its sink."""
    ids, n = [], 0
    while len(ids) < count:
        tx_id = f"tx_{n:06d}"
        if (share_of(tx_id) < share) == inside:
            ids.append(tx_id)
        n += 1
    return ids


def test_requests_start_on_schedule_and_latency_is_the_service_time() -> None:
    records = [_tx(n) for n in range(50)]
    paced, other = SlowSink("paced", 0.004), SlowSink("other")
    summary = run_virtual(replay(records, other, split=Split(paced, 1.0, rate=200, senders=4)))
    starts = [start for _, start, _ in paced.log]
    assert starts == pytest.approx([k / 200 for k in range(50)])
    assert summary.latencies_ms == pytest.approx([4.0] * 50)
    assert summary.outcomes["transaction"] == {"accepted": 50}
    assert summary.elapsed_s == pytest.approx(49 / 200 + 0.004)


def test_a_stall_counts_as_latency_for_every_request_queued_behind_it() -> None:
    """Open loop: request k is due at k/rate whatever happened before; one sender, one slow
    answer (1 s) and the nine requests due meanwhile wait, which their latency includes."""
    records = [_tx(n) for n in range(20)]
    first = records[0].transaction_id
    paced = SlowSink("paced", lambda r: 1.0 if r.transaction_id == first else 0.01)
    summary = run_virtual(
        replay(records, SlowSink("other"), split=Split(paced, 1.0, rate=10, senders=1))
    )
    expected = [1000.0]
    for k in range(1, 20):
        start = max(k / 10, 1.0 + 0.01 * (k - 1))  # after the stall, back to back until caught up
        expected.append((start + 0.01 - k / 10) * 1000)
    assert summary.latencies_ms == pytest.approx(expected, abs=1e-6)
    assert summary.latencies_ms[1] == pytest.approx(910.0)  # a closed loop would say 10 ms
    assert summary.latencies_ms[-1] == pytest.approx(10.0)  # caught up again


def test_never_more_than_senders_in_flight_and_latency_grows_when_the_sink_is_too_slow() -> None:
    records = [_tx(n) for n in range(40)]
    paced = SlowSink("paced", 1.0)  # 3 senders x 1 s each: 3 req/s, far below the rate
    summary = run_virtual(
        replay(records, SlowSink("other"), split=Split(paced, 1.0, rate=100, senders=3))
    )
    assert paced.peak == 3
    assert len(paced.log) == 40
    # the senders start at the first three due times, then each goes back to back
    ends = [k // 3 + 1 + (k % 3) / 100 for k in range(40)]
    assert sorted(end for _, _, end in paced.log) == pytest.approx(ends)
    expected = [(end - k / 100) * 1000 for k, end in enumerate(ends)]
    assert summary.latencies_ms == pytest.approx(expected)


@pytest.mark.parametrize(("seconds", "started"), [(0.001, 0.1), (1.0, 1.0)])
def test_the_rest_of_the_stream_keeps_in_step_with_the_split(
    seconds: float, started: float
) -> None:
    """Ten main-sink records follow each split request in the stream: each waits until the
    split request before it has been sent: at its due time (k / 10 s) if the split's sink is
    fast, later if it is slow (one sender, 1 s a request: request k starts at k s)."""
    inside, outside = _ids_routed(0.5, 20, inside=True), _ids_routed(0.5, 200, inside=False)
    records = []
    for k, tx_id in enumerate(inside):
        records.append(_tx(len(records), tx_id))
        records += [_tx(len(records), other) for other in outside[10 * k : 10 * k + 10]]
    paced, other = SlowSink("paced", seconds), SlowSink("other", 0.001)
    split = Split(paced, 0.5, rate=10, senders=1)
    summary = run_virtual(replay(records, other, split=split, concurrency=8))
    assert [start for _, start, _ in paced.log] == pytest.approx([k * started for k in range(20)])
    other_starts = {r.transaction_id: start for r, start, _ in other.log}
    for k in range(20):
        block = [other_starts[tx_id] for tx_id in outside[10 * k : 10 * k + 10]]
        assert min(block) == pytest.approx(k * started)
        assert max(block) < k * started + 0.01
    assert summary.by_sink == {"paced": {"accepted": 20}, "other": {"accepted": 200}}


def test_a_label_waits_for_its_transaction_and_is_not_timed() -> None:
    """The label is due 10 ms after its transaction but the transaction takes 500 ms: another
    sender holds the label until the transaction is acknowledged."""
    records = [_tx(0, "tx_a"), _label(1, "tx_a"), _tx(2, "tx_b")]
    paced = SlowSink("paced", lambda r: 0.5 if r.transaction_id == "tx_a" else 0.001)
    summary = run_virtual(
        replay(records, SlowSink("other"), split=Split(paced, 1.0, rate=100, senders=4))
    )
    sent = {(r.kind, r.transaction_id): (start, end) for r, start, end in paced.log}
    assert sent[("label", "tx_a")][0] == pytest.approx(sent[("transaction", "tx_a")][1])
    assert sent[("transaction", "tx_b")][0] == pytest.approx(0.02)  # not held up by the label
    assert summary.latencies_ms == pytest.approx([500.0, 1.0])


def test_cancelling_a_paced_replay_stops_every_sender_promptly() -> None:
    paced = SlowSink("paced", 60.0)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        records = [_tx(n) for n in range(1000)]
        run = asyncio.create_task(
            replay(records, SlowSink("other"), split=Split(paced, 1.0, rate=100, senders=5))
        )
        await asyncio.sleep(2.0)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running
        return loop.time()

    assert run_virtual(main()) == pytest.approx(2.0)
    assert paced.in_flight == 0


def test_split_validation() -> None:
    with pytest.raises(ValueError):
        Split(SlowSink("x"), 0.5, rate=0)
    with pytest.raises(ValueError):
        Split(SlowSink("x"), 0.5, rate=10, senders=0)


async def test_a_slow_http_service_never_sees_more_than_senders_requests_at_once() -> None:
    """Real time and a real (in-process) HTTP service taking 20 ms per request, at a rate
    (10,000/s) far above what 4 senders can do: the service never has more than 4 at once."""
    load = {"now": 0, "peak": 0}
    api = FastAPI()

    @api.post("/v1/transactions")
    async def transaction() -> JSONResponse:
        load["now"] += 1
        load["peak"] = max(load["peak"], load["now"])
        try:
            await asyncio.sleep(0.02)
        finally:
            load["now"] -= 1
        return JSONResponse({"score": 0.1})

    records = [_tx(n) for n in range(40)]
    transport = httpx.ASGITransport(app=api)
    async with (
        httpx.AsyncClient(transport=transport) as client,
        HttpSink("http://service.test", "key", client=client) as http,
    ):
        split = Split(http, 1.0, rate=10_000, senders=4)
        summary = await replay(records, SlowSink("other"), split=split)
    assert summary.outcomes["transaction"] == {"accepted": 40}
    assert load["peak"] == 4
    assert len(summary.latencies_ms) == 40
    assert min(summary.latencies_ms[-4:]) >= 20 * 9  # queued behind nine rounds of 20 ms


def test_a_split_held_back_by_the_rest_of_the_stream_does_not_count_that_wait() -> None:
    """The reader keeps both shares in step: when the main sink is slow, split requests are
    read late. Their schedule resumes from when they are read (the wait is the replay's, not
    the service's): latency stays the split sink's own time instead of growing without end."""
    inside, outside = _ids_routed(0.5, 10, inside=True), _ids_routed(0.5, 50, inside=False)
    records = []
    for k, tx_id in enumerate(inside):
        records.append(_tx(len(records), tx_id))
        records += [_tx(len(records), other) for other in outside[5 * k : 5 * k + 5]]
    paced, slow_main = SlowSink("paced", 0.004), SlowSink("main", 0.1)
    summary = run_virtual(
        replay(records, slow_main, split=Split(paced, 0.5, rate=100, senders=2), concurrency=1)
    )
    assert len(paced.log) == 10 and len(slow_main.log) == 50
    assert summary.latencies_ms == pytest.approx([4.0] * 10)
