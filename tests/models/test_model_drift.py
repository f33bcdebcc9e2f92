"""Drift detection: ADWIN on each model's error of its scoring-time score."""

from __future__ import annotations

from mstreams import new_pool

from models.drift import DriftMonitor


def test_a_change_in_error_is_detected_and_located() -> None:
    models = new_pool("logreg")
    for _ in range(500):
        models.learn({"amount": 1.0}, False, {"logreg": 0.02})
    drift = models.status()[0]["drift"]
    assert drift["drifts"] == 0 and drift["last_drift_at_label"] is None
    assert drift["mean_error"] < 0.05
    for _ in range(500):
        models.learn({"amount": 1.0}, True, {"logreg": 0.02})
    drift = models.status()[0]["drift"]
    assert drift["drifts"] >= 1 and 500 < drift["last_drift_at_label"] <= 1000
    assert drift["mean_error"] > 0.5  # the window kept only the new regime


def test_unjudged_labels_do_not_feed_the_detector() -> None:
    models = new_pool("logreg", "hat")
    for _ in range(100):
        models.learn({"amount": 1.0}, True, {"logreg": 0.1})
    rows = {r["name"]: r["drift"] for r in models.status()}
    assert rows["logreg"]["width"] == 100 and rows["hat"]["width"] == 0


def test_stable_error_raises_no_alarm() -> None:
    monitor = DriftMonitor()
    for i in range(3000):
        monitor.update(i % 100 == 0, 0.01)
    assert monitor.state()["drifts"] == 0
