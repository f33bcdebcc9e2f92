"""Property-based API testing over the OpenAPI spec: no 5xx, responses conform."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.service_process import KEY, ServiceProcess, serve

# No 5xx, documented status codes, content types, headers and bodies. Not "positive data
# acceptance": event-time rules (future skew, lateness) cannot be written in JSON Schema.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_url: str
) -> Iterator[ServiceProcess]:
    db_redis = redis_url.rsplit("/", 1)[0] + "/3"
    redis.Redis.from_url(db_redis).flushdb()
    log = Path(tmp_path_factory.mktemp("schemathesis")) / "service.log"
    # The session database (not a fresh one): module fixtures cannot use the async fixture.
    proc = serve({"RIVERGUARD_DATABASE_URL": database_url, "RIVERGUARD_REDIS_URL": db_redis})
    proc.start(log)
    try:
        yield proc
    finally:
        proc.stop()
        redis.Redis.from_url(db_redis).flushdb()


def test_api_never_answers_5xx_and_conforms(service: ServiceProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    paths = {operation.path for operation in operations}
    for resource in ("/v1/rules", "/v1/rules/backtest", "/v1/lists", "/v1/reviews"):
        assert resource in paths, f"{resource} is not in the schema Schemathesis tests"
    cases = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            nonlocal cases
            cases += 1
            case.call_and_validate(headers={"X-API-Key": KEY}, checks=CHECKS)

        run()
    assert cases >= 200
