"""Every metric the dashboards and alert rules query exists after one transaction.

A labelled collector exposes no sample until its first ``.labels(...)``; before this test the
stream series (consumer lag, last commit, batch sizes, dead letters), rejections and
checkpoints of a fresh service had none, so their panels read "No data" and a ``rate()`` alert
had no zero to compare its first event with. Here a fresh ``riverguard serve`` with its Kafka
workers scores ONE transaction over REST; every name the PromQL selects must then have a
sample in ``/metrics``.

Names are compared as the sample names of the exposition (a query of ``x_bucket`` needs the
bucket samples of histogram ``x``, a query of ``y_total`` the samples of counter ``y``), so no
suffix is stripped or guessed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy import promql
from tests.service_process import KEY, ServiceProcess, kafka_env, serve

pytestmark = pytest.mark.slow

PARTITIONS = 4  # per topic: the default of RIVERGUARD_TOPICS__PARTITIONS
# Queried names that cannot have a sample after one transaction, and why.
EXEMPT = {
    "up": "added by Prometheus to every scrape target, never exposed by the service",
    "riverguard_model_roc_auc": "undefined until the rolling window holds both classes",
    "riverguard_model_average_precision": "undefined until the rolling window holds a fraud",
    "riverguard_model_log_loss": "undefined until the rolling window holds a label",
    "riverguard_rule_errors_total": "one series per rule that failed; none before a failure",
    "riverguard_rule_shadow_hits_total": "one series per shadow rule that hit; none before a hit",
    "riverguard_webhook_deliveries_total": "one series per configured webhook; none without",
}


@pytest.fixture
def service(
    redis_url: str, fresh_database: str, kafka_bootstrap: str, tmp_path: Path
) -> Iterator[ServiceProcess]:
    db6 = redis_url.rsplit("/", 1)[0] + "/6"
    redis.Redis.from_url(db6).flushdb()
    env = kafka_env(db6, fresh_database, kafka_bootstrap, "cov")
    process = serve(env)
    try:
        yield process.start(tmp_path / "service.log")
    finally:
        process.stop()
        redis.Redis.from_url(db6).flushdb()


def queried_names() -> set[str]:
    return {name for _, expr in promql.all_exprs() for name in promql.metric_names(expr)}


def exposed_samples(text: str) -> set[str]:
    """Names of the samples in an exposition (a family without any sample adds nothing)."""
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def lag_series(text: str) -> set[tuple[str, str]]:
    """(topic, partition) of every consumer-lag sample."""
    return {
        (sample.labels["topic"], sample.labels["partition"])
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "riverguard_consumer_lag"
    }


def settled(client: httpx.Client, wanted: set[str], partitions: int, wait_s: float) -> str:
    """``/metrics`` once every wanted name has a sample and every partition its lag, or after
    ``wait_s``: the workers join their groups (per-partition series appear on assignment)
    in the background, and no further traffic is sent while waiting."""
    deadline = time.monotonic() + wait_s
    while True:
        text = client.get("/metrics").text
        done = not wanted - exposed_samples(text) and len(lag_series(text)) == partitions
        if done or time.monotonic() > deadline:
            return text
        time.sleep(0.25)


def test_the_exemptions_are_queried_and_the_parser_reads_suffixes() -> None:
    assert set(EXEMPT) <= queried_names()
    text = (
        "# TYPE a counter\na_total 0\n"
        '# TYPE h histogram\nh_bucket{le="+Inf"} 0\nh_count 0\nh_sum 0\n'
        "# TYPE g gauge\n"
    )
    assert exposed_samples(text) == {"a_total", "h_bucket", "h_count", "h_sum"}


def test_every_queried_metric_exists_after_one_transaction(service: ServiceProcess) -> None:
    body = {
        "transaction_id": f"cov-{uuid.uuid4().hex[:8]}",
        "card_id": "card_1",
        "merchant_id": "merch_1",
        "amount": 12.5,
        "currency": "EUR",
        "timestamp": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "channel": "ecom",
        "country": "FR",
    }
    headers = {"X-API-Key": KEY}
    with httpx.Client(base_url=service.url, headers=headers, timeout=30) as client:
        assert client.post("/v1/transactions", json=body).status_code == 200
        wanted = queried_names() - set(EXEMPT)
        text = settled(client, wanted, partitions=2 * PARTITIONS, wait_s=30)
    missing = sorted(wanted - exposed_samples(text))
    assert missing == [], service.log_tail()
    # one lag series per partition of both topics, all owned by this one member
    topics = [service.env[f"RIVERGUARD_TOPICS__{t}"] for t in ("TRANSACTIONS", "LABELS")]
    expected = {(topic, str(p)) for topic in topics for p in range(PARTITIONS)}
    assert lag_series(text) == expected
