"""Drift detection on each model's running error (ADWIN on the absolute error |y − p|).

>>> monitor = DriftMonitor()
>>> for _ in range(300):
...     monitor.update(False, 0.05)
>>> for _ in range(300):
...     monitor.update(True, 0.05)
>>> monitor.state()["drifts"] >= 1
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from river import drift


@dataclass
class DriftMonitor:
    delta: float = 0.002
    detector: drift.ADWIN = field(init=False)
    updates: int = 0
    drifts: int = 0
    last_drift_at: int | None = None
    in_drift: bool = False

    def __post_init__(self) -> None:
        self.detector = drift.ADWIN(delta=self.delta)  # type: ignore[no-untyped-call]

    def update(self, label: bool, score: float) -> None:
        self.detector.update(abs(float(label) - score))  # type: ignore[no-untyped-call]
        self.updates += 1
        self.in_drift = bool(self.detector.drift_detected)
        if self.in_drift:
            self.drifts += 1
            self.last_drift_at = self.updates

    def state(self) -> dict[str, Any]:
        return {
            "detector": "ADWIN",
            "drifts": self.drifts,
            "last_drift_at_label": self.last_drift_at,
            "in_drift": self.in_drift,
            "mean_error": float(self.detector.estimation),
            "width": int(self.detector.width),
        }
