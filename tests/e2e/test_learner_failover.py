"""Two `riverguard serve` processes on one database: one learns, the other stands by.

SIGKILL the leader: the standby takes over within the lease bound and learns what was
left. SIGSTOP a leader past its lease, then SIGCONT it: it writes nothing more. Through all
of it the learning log stays gapless and learns each label once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import redis

from tests.service_process import KEY, ServiceProcess, serve

HEADERS = {"X-API-Key": KEY}
NOW = datetime.now(UTC)


def _tx(i: int) -> dict[str, object]:
    return {
        "transaction_id": f"fo-{i}", "card_id": f"card_{i % 7}", "merchant_id": "m_1",
        "amount": 10 + i, "currency": "EUR", "channel": "ecom", "country": "FR",
        "timestamp": (NOW - timedelta(hours=40) + timedelta(minutes=i)).isoformat(),
    }  # fmt: skip


def _label(i: int) -> dict[str, object]:
    return {
        "transaction_id": f"fo-{i}", "is_fraud": i % 5 == 0,
        "labeled_at": NOW.isoformat(), "source": "chargeback",
    }  # fmt: skip


def _post(service: ServiceProcess, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{service.url}{path}", json=body, headers=HEADERS, timeout=30)


def _metric(service: ServiceProcess, name: str) -> float:
    for line in httpx.get(f"{service.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} missing")


async def _log(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch("SELECT seq, label_seq, epoch FROM learn_log ORDER BY seq")
    finally:
        await conn.close()


def _wait_learned(database_url: str, count: int, timeout: float = 60) -> list[asyncpg.Record]:
    deadline = time.monotonic() + timeout
    while True:
        log = asyncio.run(_log(database_url))
        if len(log) >= count or time.monotonic() > deadline:
            return log
        time.sleep(0.2)


def _wait_settled(database_url: str, timeout: float = 30) -> bool:
    async def waiting() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM labels WHERE status = 'received'"))
        finally:
            await conn.close()

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if asyncio.run(waiting()) == 0:
            return True
        time.sleep(0.2)
    return False


def _check(log: list[asyncpg.Record], count: int) -> None:
    assert [r["seq"] for r in log] == list(range(1, count + 1)), "the log has a gap"
    assert len({r["label_seq"] for r in log}) == count, "a label was learned twice"


def _same_scores_once_the_follower_has_the_leaders_bundle(
    leader: ServiceProcess, follower: ServiceProcess
) -> None:
    head = _metric(leader, "riverguard_learning_log_head")
    deadline = time.monotonic() + 30
    while _metric(follower, "riverguard_bundle_loaded_seq") < head:
        assert time.monotonic() < deadline, "the follower never loaded the leader's bundle"
        time.sleep(0.2)
    assert _metric(follower, "riverguard_learning_log_head") == head
    probes = []
    for name, service in (("a", leader), ("b", follower)):  # new card and merchant: same features
        body = {**_tx(0), "transaction_id": f"probe-{name}", "card_id": f"probe_card_{name}",
                "merchant_id": f"probe_m_{name}"}  # fmt: skip
        answer = _post(service, "/v1/transactions", body).json()
        probes.append((answer["score"], [s["score"] for s in answer["shadow"]]))
    assert probes[0] == probes[1], "two processes at the same bundle scored differently"


def test_kill_and_pause_the_leader(redis_url: str, fresh_database: str, tmp_path: Path) -> None:
    db7 = redis_url.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(db7).flushdb()
    env = {
        "RIVERGUARD_REDIS_URL": db7, "RIVERGUARD_DATABASE_URL": fresh_database,
        "RIVERGUARD_SCORING__LEASE_SECONDS": "2", "RIVERGUARD_SCORING__CHALLENGERS": '["hat"]',
        "RIVERGUARD_SCORING__BUNDLE_EVERY_SECONDS": "1",
    }  # fmt: skip
    first = serve(env).start(tmp_path / "first.log")
    second = serve(env).start(tmp_path / "second.log")
    third: ServiceProcess | None = None
    try:
        assert _metric(first, "riverguard_learner_leading") == 1
        assert _metric(second, "riverguard_learner_leading") == 0
        for i in range(30):
            assert _post(second if i % 2 else first, "/v1/transactions", _tx(i)).status_code == 200
        answers = [_post(second, "/v1/labels", _label(i)).json()["status"] for i in range(10)]
        assert set(answers) == {"accepted"}  # the standby records, the leader settles
        _check(_wait_learned(fresh_database, 10), 10)
        _same_scores_once_the_follower_has_the_leaders_bundle(first, second)

        first.kill()  # SIGKILL: its session ends, the lock is free at once
        for i in range(10, 20):
            assert _post(second, "/v1/labels", _label(i)).status_code == 202
        log = _wait_learned(fresh_database, 20)
        _check(log, 20)
        assert {r["epoch"] for r in log[10:]} == {2}
        assert _metric(second, "riverguard_learner_leading") == 1

        third = serve(env).start(tmp_path / "third.log")  # the new standby
        assert second.process is not None
        os.kill(second.process.pid, signal.SIGSTOP)  # a paused leader keeps its session
        try:
            for i in range(20, 30):
                assert _post(third, "/v1/labels", _label(i)).json()["status"] == "accepted"
            log = _wait_learned(fresh_database, 30, timeout=60)  # after the lease expires
            _check(log, 30)
            assert {r["epoch"] for r in log[20:]} == {3}
        finally:
            os.kill(second.process.pid, signal.SIGCONT)
        # the woken zombie may still think it leads: what it receives is settled once, by 3
        assert _post(second, "/v1/labels", _label(0)).status_code == 202
        assert _wait_settled(fresh_database), "a received label was never settled"
        log = asyncio.run(_log(fresh_database))
        assert len(log) == 30  # a duplicate: settled, not learned
        assert {r["epoch"] for r in log[20:]} == {3}, "the stale learner wrote"
        assert [r["seq"] for r in log] == list(range(1, len(log) + 1))
    finally:
        for service in (first, second, third):
            if service is not None:
                service.stop()
        redis.Redis.from_url(db7).flushdb()
