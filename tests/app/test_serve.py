"""`riverguard serve` against real servers: liveness, readiness, and a dependency going down."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.tools.embedded import EmbeddedStack
from app.tools.service_process import RIVERGUARD, ServiceProcess


@pytest.fixture
def private_redis() -> Iterator[tuple[EmbeddedStack, str]]:
    server = EmbeddedStack()
    try:
        urls = server.start(kafka=False, postgres=False)
        assert urls.redis_url is not None
        yield server, urls.redis_url
    finally:
        server.close()


@pytest.mark.slow
def test_serve_ready_then_redis_down_names_redis(
    private_redis: tuple[EmbeddedStack, str],
    fresh_database: str,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    redis_stack, redis_url = private_redis
    service = ServiceProcess(
        {
            "RIVERGUARD_REDIS_URL": redis_url,
            "RIVERGUARD_DATABASE_URL": fresh_database,
            "RIVERGUARD_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "RIVERGUARD_API_KEYS": "test-key=score|label|admin",
        },
        ready_path="/healthz",
    )
    try:
        service.start(tmp_path / "service.log")
        ready = httpx.get(f"{service.url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text

        redis_stack.close()
        down = httpx.get(f"{service.url}/readyz", timeout=10)
        assert down.status_code == 503
        assert "redis" in down.json()["down"]
        assert "postgres" not in down.json()["down"]
        assert httpx.get(f"{service.url}/healthz", timeout=5).status_code == 200
    finally:
        service.stop()


def test_serve_without_urls_refuses_with_a_clear_message() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVERGUARD_")}
    done = subprocess.run(
        [str(RIVERGUARD), "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "RIVERGUARD_REDIS_URL" in done.stderr
    assert "RIVERGUARD_DATABASE_URL" in done.stderr
