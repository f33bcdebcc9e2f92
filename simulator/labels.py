"""When and how outcomes become known: chargebacks, analyst reviews, customer reports.

Every attack (incident) is reported together or not at all; its source decides the delay:

* ``review`` — an analyst confirms it within hours to two days (log-uniform);
* ``customer`` — the holder calls in, typically within a couple of days (log-normal);
* ``chargeback`` — the dispute arrives 1–60 days later, median about a week (log-normal).

A few genuine transactions are disputed anyway (false chargebacks). Everything nobody disputed
(genuine transactions and unreported fraud alike) is, with ``genuine_share``, confirmed as
genuine once it matures, with a delay drawn like a chargeback's; those labels carry the source
``simulator`` because a real bank infers them from the absence of a dispute. Labels whose
``labeled_at`` falls after the end of the period are dropped (the future is not simulated).

>>> frame_times = np.array([0, 10 * DAY_MS])
>>> scen, inc = np.array([0, -1]), np.array([0, -1])
>>> out = make_labels(frame_times, scen, inc, LabelConfig(unreported_rate=0.0), 40 * DAY_MS,
...                   np.random.default_rng(0))
>>> bool((out.time > frame_times[out.row]).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from simulator.config import LabelConfig
from simulator.frame import LEGIT
from simulator.population import DAY_MS
from simulator.sampling import FloatArray, IntArray

SOURCES: Final = ("chargeback", "review", "customer", "simulator")
CHARGEBACK, REVIEW, CUSTOMER, SIMULATOR = range(4)
HOUR_MS: Final = 3_600_000


@dataclass(frozen=True)
class Labels:
    """Label rows: the transaction row they judge, when, the verdict and its source."""

    row: IntArray
    time: IntArray
    is_fraud: npt.NDArray[np.bool_]
    source: IntArray
    dropped: int


def make_labels(
    times: IntArray,
    scenario: IntArray,
    incident: IntArray,
    config: LabelConfig,
    horizon: int,
    rng: np.random.Generator,
) -> Labels:
    """Labels for transactions at ``times`` (ms); those after ``horizon`` are dropped."""
    fraud = np.flatnonzero(scenario != LEGIT)
    incidents, which = np.unique(incident[fraud], return_inverse=True)
    reported = rng.random(len(incidents)) >= config.unreported_rate
    pick = rng.random(len(incidents))
    source = np.where(
        pick < config.review_share,
        REVIEW,
        np.where(pick < config.review_share + config.customer_share, CUSTOMER, CHARGEBACK),
    )
    base = _delays(source, config, rng)
    fraud_rows = fraud[reported[which]]
    fraud_source = source[which][reported[which]]
    jitter = rng.lognormal(0.0, 0.1, len(fraud_rows))
    fraud_delay = _clip(base[which][reported[which]] * jitter, fraud_source, config)

    quiet = np.ones(len(times), dtype=bool)
    quiet[fraud_rows] = False
    quiet_rows = np.flatnonzero(quiet)
    disputed = (scenario[quiet_rows] == LEGIT) & (
        rng.random(len(quiet_rows)) < config.false_report_rate
    )
    confirmed = ~disputed & (rng.random(len(quiet_rows)) < config.genuine_share)
    false_rows, genuine_rows = quiet_rows[disputed], quiet_rows[confirmed]
    false_delay = _delays(np.full(len(false_rows), CHARGEBACK), config, rng)
    genuine_delay = _clip(
        _lognormal(
            config.genuine_median_days * DAY_MS, config.chargeback_sigma, len(genuine_rows), rng
        ),
        np.full(len(genuine_rows), CHARGEBACK),
        config,
    )

    row = np.concatenate([fraud_rows, false_rows, genuine_rows]).astype(np.int64)
    delay = np.concatenate([fraud_delay, false_delay, genuine_delay])
    is_fraud = np.r_[
        np.ones(len(fraud_rows) + len(false_rows), bool), np.zeros(len(genuine_rows), bool)
    ]
    src = np.concatenate(
        [fraud_source, np.full(len(false_rows), CHARGEBACK), np.full(len(genuine_rows), SIMULATOR)]
    ).astype(np.int64)
    at = times[row] + np.maximum(np.round(delay), 1).astype(np.int64)
    keep = at <= horizon
    order = np.lexsort((row[keep], at[keep]))
    return Labels(
        row[keep][order],
        at[keep][order],
        is_fraud[keep][order],
        src[keep][order],
        dropped=int((~keep).sum()),
    )


def _delays(source: IntArray, config: LabelConfig, rng: np.random.Generator) -> FloatArray:
    """One delay (ms) per entry, by source."""
    n = len(source)
    review = np.exp(
        rng.uniform(np.log(config.review_min_hours), np.log(config.review_max_hours), n)
    )
    customer = _lognormal(config.customer_median_days * DAY_MS, 0.8, n, rng)
    chargeback = _lognormal(config.chargeback_median_days * DAY_MS, config.chargeback_sigma, n, rng)
    delay = np.where(
        source == REVIEW, review * HOUR_MS, np.where(source == CUSTOMER, customer, chargeback)
    )
    return _clip(delay, source, config)


def _lognormal(median: float, sigma: float, n: int, rng: np.random.Generator) -> FloatArray:
    return np.asarray(median * rng.lognormal(0.0, sigma, n), dtype=np.float64)


def _clip(delay: FloatArray, source: IntArray, config: LabelConfig) -> FloatArray:
    """Keep each delay inside its source's bounds."""
    lo = np.where(
        source == REVIEW,
        config.review_min_hours * HOUR_MS,
        np.where(source == CUSTOMER, 2 * HOUR_MS, config.chargeback_min_days * DAY_MS),
    )
    hi = np.where(
        source == REVIEW, config.review_max_hours * HOUR_MS, config.chargeback_max_days * DAY_MS
    )
    return np.asarray(np.clip(delay, lo, hi), dtype=np.float64)
