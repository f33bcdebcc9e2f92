"""`riverguard serve --workers 2`: two processes behind one port; one learns, both answer."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import redis

from app.tools.service_process import RIVERGUARD
from tests.service_process import KEY, serve

HEADERS = {"X-API-Key": KEY}


def _leading(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("riverguard_learner_leading "):
            return float(line.split()[1])
    raise AssertionError("riverguard_learner_leading missing")


def test_two_processes_share_the_port_and_exactly_one_leads(
    redis_url: str, fresh_database: str, tmp_path: Path
) -> None:
    db8 = redis_url.rsplit("/", 1)[0] + "/8"
    redis.Redis.from_url(db8).flushdb()
    service = serve({"RIVERGUARD_REDIS_URL": db8, "RIVERGUARD_DATABASE_URL": fresh_database})
    service.command = (str(RIVERGUARD), "serve", "--workers", "2")
    service.start(tmp_path / "workers.log")
    try:
        children = psutil.Process(service.pid).children()
        assert len(children) == 2
        deadline = time.monotonic() + 60
        seen: set[float] = set()
        while seen != {0.0, 1.0}:  # new connections land on either process
            assert time.monotonic() < deadline, f"only {seen} answered:\n{service.log_tail()}"
            seen.add(_leading(service.url))
        body = {
            "transaction_id": "w-1", "card_id": "c1", "merchant_id": "m1", "amount": 5,
            "currency": "EUR", "timestamp": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        }  # fmt: skip
        assert httpx.post(f"{service.url}/v1/transactions", json=body, headers=HEADERS).is_success
    finally:
        assert service.stop() == 0
    assert not [child for child in children if child.is_running()], "a worker outlived serve"
    redis.Redis.from_url(db8).flushdb()
