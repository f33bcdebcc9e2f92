"""Series whose label values are known in advance, created at zero before their first event.

A labelled Prometheus collector exposes nothing until ``.labels(...)`` is called, so without
this a dashboard panel reads "No data" and a ``rate()`` alert has no earlier sample to compare
the first event with. The label values come from the constants the producing code uses (the
reasons of :mod:`features.schema` and :mod:`app.core.scoring`, the decisions, the pool's models), so
the two cannot drift apart.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from typing import get_args

from prometheus_client import Counter, Gauge, Histogram

from app.core import cases, lists, outbox, reviews
from app.core.learning import LabelStatus
from app.core.metrics import Metrics
from app.core.scoring import REJECTION_REASONS, STAGES
from features.schema import DecidedBy, Decision
from models.member import Role

PATHS = ("rest", "kafka")
TRANSACTION_OUTCOMES = ("scored", "replayed", "rejected", "conflict")
# "expired" is counted by the learner's clean-up, never returned by a submit
LABEL_STATUSES = (*get_args(LabelStatus), "expired")


def touch(collector: Counter | Gauge | Histogram, combos: Iterable[Sequence[str]]) -> None:
    """Create each child (a counter or gauge at 0, a histogram with empty buckets)."""
    for values in combos:
        collector.labels(*values)


def at_start(metrics: Metrics, models: Sequence[str]) -> None:
    """Every series of the scoring and learning paths, for the pool's ``models``."""
    touch(metrics.stage, [(stage,) for stage in STAGES])
    touch(metrics.decisions, [(decision,) for decision in get_args(Decision)])
    touch(metrics.decided_by, [(layer,) for layer in get_args(DecidedBy)])
    touch(metrics.cutoff, [("review",), ("decline",)])
    touch(metrics.budget, [("review",), ("decline",)])
    touch(metrics.labels, [(status,) for status in LABEL_STATUSES])
    touch(metrics.rejections, _rejections())
    touch(metrics.inputs, _inputs())
    touch(metrics.checkpoints, [(model,) for model in models])
    touch(metrics.list_hits, itertools.product(lists.ENTITIES, lists.KINDS))
    touch(metrics.list_entries, [(kind,) for kind in lists.KINDS])
    touch(metrics.cases_open, [(p,) for p in cases.PRIORITIES])
    touch(metrics.cases_overdue, [(p,) for p in cases.PRIORITIES])
    touch(metrics.cases_closed, [(o,) for o in cases.OUTCOMES])
    # roles move with a promotion, so every model gets both
    touch(metrics.scores, itertools.product(models, get_args(Role)))
    touch(
        metrics.promotions,
        [
            (old, new, automatic)
            for old, new in itertools.permutations(models, 2)
            for automatic in ("true", "false")
        ],
    )


def for_analysts(metrics: Metrics, analysts: Iterable[str]) -> None:
    """The verdict series of every key that may give verdicts (its name is the analyst)."""
    touch(metrics.review_verdicts, itertools.product(reviews.VERDICTS, sorted(set(analysts))))


def for_admission(metrics: Metrics, routes: Iterable[str]) -> None:
    """The shed-request counter of every route behind the admission limit."""
    touch(metrics.shed, [(route,) for route in routes])


def for_outbox(metrics: Metrics, endpoints: Iterable[str]) -> None:
    """The relay's error series and each webhook endpoint's delivery outcomes."""
    touch(metrics.outbox_errors, [("relay",), ("webhook",)])
    touch(metrics.webhook_deliveries, itertools.product(endpoints, outbox.WEBHOOK_OUTCOMES))


def for_worker(metrics: Metrics, topic: str, kind: str) -> None:
    """The topic-level series of a stream worker consuming ``kind`` records from ``topic``.

    The last-commit time starts at the worker's start: "seconds since the last commit" then
    means since the worker could first have committed, which is what a stall alert needs.
    """
    touch(metrics.batch_size, [(topic,)])
    touch(metrics.dead_letters, [(topic, reason) for reason in REJECTION_REASONS[kind]])
    metrics.last_commit.labels(topic).set(time.time())


def reassign(metrics: Metrics, topic: str, owned: set[int], assigned: set[int]) -> None:
    """Lag series for the partitions now ``assigned``; those of moved partitions are removed.

    A partition that moved to another consumer is that consumer's to report: keeping its last
    value here would count its lag twice in ``sum by (topic)`` (and forever, once stale).
    Kept partitions keep their value; new ones start at 0 until their first batch.
    """
    for partition in sorted(owned - assigned):
        metrics.consumer_lag.remove(topic, str(partition))
    touch(metrics.consumer_lag, [(topic, str(partition)) for partition in sorted(assigned)])


def _rejections() -> list[tuple[str, str]]:
    return [(kind, reason) for kind, reasons in REJECTION_REASONS.items() for reason in reasons]


def _inputs() -> list[tuple[str, str, str]]:
    transactions = [("transaction", path, o) for path in PATHS for o in TRANSACTION_OUTCOMES]
    labels = [("label", path, status) for path in PATHS for status in get_args(LabelStatus)]
    rejected = [("label", "rest", "rejected")]
    dead = [(kind, "kafka", "dead_letter") for kind in ("transaction", "label")]
    return transactions + labels + rejected + dead
