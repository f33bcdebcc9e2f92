"""`riverguard serve` against real servers: liveness, readiness, and a dependency going down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.tools.embedded import EmbeddedStack, die_with_parent, free_port

RIVERGUARD = Path(sys.executable).with_name("riverguard")


@pytest.fixture
def private_redis() -> Iterator[tuple[EmbeddedStack, str]]:
    server = EmbeddedStack()
    try:
        urls = server.start(kafka=False, postgres=False)
        assert urls.redis_url is not None
        yield server, urls.redis_url
    finally:
        server.close()


def _wait_for(url: str, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


@pytest.mark.slow
def test_serve_ready_then_redis_down_names_redis(
    private_redis: tuple[EmbeddedStack, str], fresh_database: str, kafka_bootstrap: str
) -> None:
    redis_stack, redis_url = private_redis
    port = free_port()
    env = {
        **os.environ,
        "RIVERGUARD_REDIS_URL": redis_url,
        "RIVERGUARD_DATABASE_URL": fresh_database,
        "RIVERGUARD_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "RIVERGUARD_PORT": str(port),
        "RIVERGUARD_API_KEYS": "test-key=score|label|admin",
    }
    process = subprocess.Popen(
        [str(RIVERGUARD), "serve"], env=env, stderr=subprocess.PIPE, preexec_fn=die_with_parent()
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert _wait_for(f"{base}/healthz").status_code == 200
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text

        redis_stack.close()
        down = httpx.get(f"{base}/readyz", timeout=10)
        assert down.status_code == 503
        assert "redis" in down.json()["down"]
        assert "postgres" not in down.json()["down"]
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_serve_without_urls_refuses_with_a_clear_message() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVERGUARD_")}
    done = subprocess.run(
        [str(RIVERGUARD), "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "RIVERGUARD_REDIS_URL" in done.stderr
    assert "RIVERGUARD_DATABASE_URL" in done.stderr
