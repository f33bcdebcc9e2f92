"""Label delays, reporting and noise follow the configuration."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from simulator.config import LabelConfig, SimConfig
from simulator.generate import generate
from simulator.labels import CHARGEBACK, CUSTOMER, HOUR_MS, REVIEW, SIMULATOR, make_labels
from simulator.population import DAY_MS

HORIZON = 10_000 * DAY_MS  # far enough that nothing is dropped


def _fraud_only(n: int, incident_size: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    times = np.arange(n, dtype=np.int64) * 60_000
    scenario = np.zeros(n, dtype=np.int64)
    incident = np.arange(n, dtype=np.int64) // incident_size
    return times, scenario, incident


def _delays_days(config: LabelConfig, source: int, n: int = 6000) -> np.ndarray:
    times, scenario, incident = _fraud_only(n)
    labels = make_labels(times, scenario, incident, config, HORIZON, np.random.default_rng(1))
    mask = labels.is_fraud & (labels.source == source)
    return np.asarray((labels.time[mask] - times[labels.row[mask]]) / DAY_MS)


@pytest.mark.parametrize("median", [5.0, 7.0, 14.0])
def test_chargeback_delay_follows_the_configured_distribution(median: float) -> None:
    config = LabelConfig(chargeback_median_days=median, review_share=0.0, customer_share=0.0)
    delays = _delays_days(config, CHARGEBACK)
    assert len(delays) > 4000
    assert np.median(delays) == pytest.approx(median, rel=0.1)
    assert delays.min() >= config.chargeback_min_days
    assert delays.max() <= config.chargeback_max_days


def test_reviews_come_within_hours_to_two_days() -> None:
    config = LabelConfig(review_share=0.5, customer_share=0.2)
    reviews = _delays_days(config, REVIEW) * 24
    assert len(reviews) == pytest.approx(0.5 * 0.9 * 6000, rel=0.1)
    assert reviews.min() >= 1.0 and reviews.max() <= 48.0
    customers = _delays_days(config, CUSTOMER)
    chargebacks = _delays_days(config, CHARGEBACK)
    assert np.median(reviews / 24) < np.median(customers) < np.median(chargebacks)


def test_some_frauds_are_never_reported_and_incidents_report_together() -> None:
    times, scenario, incident = _fraud_only(8000, incident_size=4)
    config = LabelConfig(unreported_rate=0.3, genuine_share=0.0)
    labels = make_labels(times, scenario, incident, config, HORIZON, np.random.default_rng(2))
    reported = np.zeros(len(times), dtype=bool)
    reported[labels.row[labels.is_fraud]] = True
    assert 1 - reported.mean() == pytest.approx(0.3, abs=0.04)
    per_incident = np.bincount(incident, weights=reported) / 4
    assert set(np.unique(per_incident)) <= {0.0, 1.0}  # all or nothing per attack
    sources: dict[int, set[int]] = {}
    for row, source in zip(labels.row.tolist(), labels.source.tolist(), strict=True):
        sources.setdefault(incident[row], set()).add(source)
    assert all(len(found) == 1 for found in sources.values())


def test_false_reports_and_genuine_confirmations() -> None:
    n = 50_000
    times = np.arange(n, dtype=np.int64) * 1000
    scenario = np.full(n, -1, dtype=np.int64)
    incident = np.full(n, -1, dtype=np.int64)
    config = LabelConfig(false_report_rate=0.01, genuine_share=0.5)
    labels = make_labels(times, scenario, incident, config, HORIZON, np.random.default_rng(3))
    assert labels.is_fraud.mean() * len(labels.row) / n == pytest.approx(0.01, rel=0.2)
    assert (labels.source[labels.is_fraud] == CHARGEBACK).all()
    genuine = labels.source == SIMULATOR
    assert genuine.sum() / n == pytest.approx(0.5 * 0.99, rel=0.05)
    assert not labels.is_fraud[genuine].any()
    assert len(np.unique(labels.row)) == len(labels.row)  # one label per transaction


def test_labels_after_the_horizon_are_dropped() -> None:
    times, scenario, incident = _fraud_only(2000)
    config = LabelConfig(unreported_rate=0.0)
    horizon = int(2.0 * DAY_MS)
    labels = make_labels(times, scenario, incident, config, horizon, np.random.default_rng(4))
    assert (labels.time <= horizon).all()
    assert labels.dropped > 0
    assert len(labels.row) + labels.dropped == 2000
    assert (labels.time > times[labels.row]).all()
    assert (labels.time - times[labels.row] >= HOUR_MS).all()


def test_stream_delays_match_the_configuration() -> None:
    """Over a long period, delays of early frauds are complete (not cut by the end)."""
    config = SimConfig(cards=1500, days=80, seed=9, fraud_rate=0.03)
    tx_time: dict[str, datetime] = {}
    delays: dict[str, list[float]] = {"chargeback": [], "review": [], "customer": []}
    for record in generate(config):
        if record.kind == "transaction":
            if record.truth and record.truth.is_fraud and record.event_time.day <= 15:
                tx_time[record.transaction_id] = record.event_time
        elif record.data["is_fraud"] and record.transaction_id in tx_time:
            delta = record.event_time - tx_time[record.transaction_id]
            delays[record.data["source"]].append(delta.total_seconds() / 86400)
    labels = config.labels
    chargebacks = np.array(delays["chargeback"])
    assert np.median(chargebacks) == pytest.approx(labels.chargeback_median_days, rel=0.2)
    assert chargebacks.min() >= 1.0 and chargebacks.max() <= 60.0
    assert max(delays["review"]) <= 2.0
    total = sum(len(v) for v in delays.values())
    assert len(delays["review"]) / total == pytest.approx(labels.review_share, abs=0.08)
