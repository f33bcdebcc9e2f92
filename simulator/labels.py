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


@dataclass(frozen=True)
class _Batch:
    row: IntArray
    delay: FloatArray
    is_fraud: bool
    source: IntArray


def make_labels(
    times: IntArray,
    scenario: IntArray,
    incident: IntArray,
    config: LabelConfig,
    horizon: int,
    rng: np.random.Generator,
) -> Labels:
    """Labels for transactions at ``times`` (ms); those after ``horizon`` are dropped."""
    reports = _fraud_reports(scenario, incident, config, rng)
    quiet = np.ones(len(times), dtype=bool)
    quiet[reports.row] = False
    disputes, confirmations = _undisputed(np.flatnonzero(quiet), scenario, config, rng)
    batches = (reports, disputes, confirmations)
    row = np.concatenate([b.row for b in batches]).astype(np.int64)
    delay = np.concatenate([b.delay for b in batches])
    is_fraud = np.concatenate([np.full(len(b.row), b.is_fraud) for b in batches])
    source = np.concatenate([b.source for b in batches]).astype(np.int64)
    at = times[row] + np.maximum(np.round(delay), 1).astype(np.int64)
    keep = at <= horizon
    order = np.lexsort((row[keep], at[keep]))
    return Labels(
        row[keep][order],
        at[keep][order],
        is_fraud[keep][order],
        source[keep][order],
        dropped=int((~keep).sum()),
    )


def _fraud_reports(
    scenario: IntArray, incident: IntArray, config: LabelConfig, rng: np.random.Generator
) -> _Batch:
    """Each attack is reported (or not) as a whole, by one source, after one base delay."""
    fraud = np.flatnonzero(scenario != LEGIT)
    incidents, which = np.unique(incident[fraud], return_inverse=True)
    reported = rng.random(len(incidents)) >= config.unreported_rate
    pick = rng.random(len(incidents))
    customer_until = config.review_share + config.customer_share
    source = np.where(
        pick < config.review_share,
        REVIEW,
        np.where(pick < customer_until, CUSTOMER, CHARGEBACK),
    )
    base = _delays(source, config, rng)
    kept = reported[which]
    row_source = source[which][kept]
    jitter = rng.lognormal(0.0, 0.1, int(kept.sum()))  # one attack's reports land close together
    delay = _clip(base[which][kept] * jitter, row_source, config)
    return _Batch(fraud[kept], delay, True, row_source)


def _undisputed(
    rows: IntArray, scenario: IntArray, config: LabelConfig, rng: np.random.Generator
) -> tuple[_Batch, _Batch]:
    """False chargebacks on genuine rows; genuine confirmations for the rest (by share)."""
    disputed = (scenario[rows] == LEGIT) & (rng.random(len(rows)) < config.false_report_rate)
    confirmed = ~disputed & (rng.random(len(rows)) < config.genuine_share)
    false_rows, genuine_rows = rows[disputed], rows[confirmed]
    chargebacks = np.full(len(false_rows), CHARGEBACK)
    matured = np.full(len(genuine_rows), CHARGEBACK)  # bounded like a chargeback
    median = config.genuine_median_days * DAY_MS
    genuine_delay = _clip(
        _lognormal(median, config.chargeback_sigma, len(genuine_rows), rng), matured, config
    )
    return (
        _Batch(false_rows, _delays(chargebacks, config, rng), True, chargebacks),
        _Batch(genuine_rows, genuine_delay, False, np.full(len(genuine_rows), SIMULATOR)),
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
