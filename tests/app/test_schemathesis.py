"""Property-based API testing over the OpenAPI spec: no 5xx, responses conform."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings

from tests.service_process import KEY, ServiceProcess


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_url: str
) -> Iterator[ServiceProcess]:
    db_redis = redis_url.rsplit("/", 1)[0] + "/3"
    redis.Redis.from_url(db_redis).flushdb()
    log = Path(tmp_path_factory.mktemp("schemathesis")) / "service.log"
    # The session database (not a fresh one): module fixtures cannot use the async fixture.
    proc = ServiceProcess(
        env={"RIVERGUARD_DATABASE_URL": database_url, "RIVERGUARD_REDIS_URL": db_redis}
    )
    proc.start(log)
    try:
        yield proc
    finally:
        proc.stop()
        redis.Redis.from_url(db_redis).flushdb()


@pytest.fixture(scope="module")
def api_schema(service: ServiceProcess) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_never_answers_5xx_and_conforms(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"X-API-Key": KEY})
