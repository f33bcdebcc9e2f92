"""Session fixtures: one embedded stack (real Tansu, Valkey, PostgreSQL) per test run.

Every server listens on a free loopback port and is stopped at the end of the session; the
system Redis and PostgreSQL of the machine are never touched.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from app.tools.embedded import EmbeddedStack, StackUrls


@pytest.fixture(scope="session")
def stack() -> Iterator[StackUrls]:
    server = EmbeddedStack(fast_postgres=True)
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture(scope="session")
def cluster() -> Iterator[EmbeddedStack]:
    """A three-node Valkey Cluster, started once for the tests that need one."""
    stack = EmbeddedStack()
    try:
        stack.start(kafka=False, postgres=False, redis_cluster=True)
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="session")
def redis_url(stack: StackUrls) -> str:
    assert stack.redis_url is not None
    return stack.redis_url


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: StackUrls) -> str:
    assert stack.kafka_bootstrap is not None
    return stack.kafka_bootstrap


@pytest.fixture(scope="session")
def database_url(stack: StackUrls) -> str:
    assert stack.database_url is not None
    return stack.database_url


@pytest.fixture
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    """A new, empty database on the session's PostgreSQL, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield database_url.rsplit("/", 1)[0] + f"/{name}"
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


_SERVER_FIXTURES = {
    "stack",
    "redis_url",
    "database_url",
    "kafka_bootstrap",
    "fresh_database",
    "cluster",
}
_SERVER_DIRS = ("e2e", "deploy")
_PROCESS_MODULES = {"test_stack", "test_stack_private_dir", "test_serve", "test_die_with_parent",
                    "test_config", "test_sim_cli"}  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that need real servers or child processes (`make test-fast` skips them)."""
    for item in items:
        in_server_dir = any(d in item.path.parts for d in _SERVER_DIRS)
        uses_servers = bool(_SERVER_FIXTURES & set(getattr(item, "fixturenames", ())))
        if uses_servers or in_server_dir or item.path.stem in _PROCESS_MODULES:
            item.add_marker(pytest.mark.servers)
