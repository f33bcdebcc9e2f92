"""Every Prometheus collector of riverguard, declared once, in a registry per application.

A registry per app (rather than the process-global default) keeps test apps independent and
lets ``/metrics`` expose exactly this service. Model-quality gauges are read from the pool at
scrape time by :class:`PoolCollector`, so they never go stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from app.core import chores

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
SCORE_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
DELAY_BUCKETS = tuple(h * 3600.0 for h in (1, 6, 24, 48, 72, 120, 168, 336, 720, 1440))
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)


@dataclass
class Metrics:
    """The collectors; build one per application with its own registry."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Histogram(
            "riverguard_http_request_duration_seconds",
            "HTTP request latency by route template and status code.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.shed = Counter(
            "riverguard_http_requests_shed",
            "Intake requests refused with 503 at the admission limit (in flight per process).",
            ["route"],
            registry=r,
        )
        self.stage = Histogram(
            "riverguard_scoring_stage_seconds",
            "Time per scoring stage (features, models, persistence) per batch.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.inputs = Counter(
            "riverguard_inputs_total",
            "Every input and where it ended: scored, replayed, rejected, conflict, dead_letter.",
            ["kind", "path", "outcome"],
            registry=r,
        )
        self.rejections = Counter(
            "riverguard_rejections_total",
            "Rejected inputs by reason (validation failures, late events, conflicts).",
            ["kind", "reason"],
            registry=r,
        )
        self.decisions = Counter(
            "riverguard_decisions_total", "Champion decisions by outcome.", ["decision"], registry=r
        )
        self.decided_by = Counter(
            "riverguard_decided_by_total",
            "Decisions by the layer that made them (model: cutoffs; warmup: the champion"
            " had not learned enough, approved; rule; list).",
            ["layer"],
            registry=r,
        )
        self.rule_errors = Counter(
            "riverguard_rule_errors_total",
            "Rule evaluations that failed at run time (counted as no match), by rule id.",
            ["rule"],
            registry=r,
        )
        self.rules_disabled = Counter(
            "riverguard_rules_disabled_total",
            "Rules this process disabled for going over their run-time cost budget (the rule"
            " id is in the log and the rule's audit history).",
            registry=r,
        )
        self.cutoff = Gauge(
            "riverguard_decision_cutoff",
            "The champion score at which the model reviews or declines (+Inf: never).",
            ["decision"],
            registry=r,
        )
        self.budget = Gauge(
            "riverguard_decision_budget",
            "The share of traffic a budget sends to review or decline (0: no budget, fixed).",
            ["decision"],
            registry=r,
        )
        self.budget_scores = Gauge(
            "riverguard_decision_budget_scores",
            "Champion scores the budget cutoffs were computed from (0: fixed thresholds).",
            registry=r,
        )
        self.scores = Histogram(
            "riverguard_model_score",
            "Distribution of scores given, per model and role.",
            ["model", "role"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.labels = Counter(
            "riverguard_labels_total",
            "Labels by status: learned, duplicate, parked, relabeled, superseded, expired;"
            " unreadable: a parked label whose record could not be read (it stays parked).",
            ["status"],
            registry=r,
        )
        self.label_delay = Histogram(
            "riverguard_label_delay_seconds",
            "Event-time delay between a transaction and its label.",
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.promotions = Counter(
            "riverguard_promotions_total",
            "Champion changes.",
            ["from_model", "to_model", "automatic"],
            registry=r,
        )
        self.checkpoints = Counter(
            "riverguard_checkpoints_total", "Model snapshots written.", ["model"], registry=r
        )
        self.batch_size = Histogram(
            "riverguard_stream_batch_size",
            "Records per consumed poll batch.",
            ["topic"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "riverguard_consumer_lag",
            "Records behind the end of each assigned partition (0 until its first batch).",
            ["topic", "partition"],
            registry=r,
        )
        self.last_commit = Gauge(
            "riverguard_last_commit_timestamp_seconds",
            "Unix time of the last offset commit per topic (the worker's start before one).",
            ["topic"],
            registry=r,
        )
        self.dead_letters = Counter(
            "riverguard_dead_letters_total",
            "Records sent to the dead-letter topic, by source topic and reason.",
            ["topic", "reason"],
            registry=r,
        )
        self.build = Info("riverguard_build", "Versions of riverguard and its engines.", registry=r)
        self.dependency_up = Gauge(
            "riverguard_dependency_up",
            "1 when a dependency or worker passed the last readiness check, else 0.",
            ["dependency"],
            registry=r,
        )
        self.ready = Gauge(
            "riverguard_ready", "1 when /readyz would answer 200, else 0.", registry=r
        )
        self.learner_leading = Gauge(
            "riverguard_learner_leading",
            "1 while this process's learner leads (learns and writes the log), 0 as a standby.",
            registry=r,
        )
        self.learner_errors = Counter(
            "riverguard_learner_errors_total",
            "Learner steps that failed (claim, adopt, bundle, expiry, checkpoint, policy);"
            " the sweep goes on with the next step.",
            ["step"],
            registry=r,
        )
        for step in chores.STEPS:  # a rate() alert needs a zero before the first failure
            self.learner_errors.labels(step)
        self.learner_epoch = Gauge(
            "riverguard_learner_epoch", "The lease epoch this process last led with.", registry=r
        )
        self.bundle_published = Gauge(
            "riverguard_bundle_published_seq",
            "Learning-log position of the newest model bundle the leader published.",
            registry=r,
        )
        self.bundle_loaded = Gauge(
            "riverguard_bundle_loaded_seq",
            "Learning-log position of the bundle this process scores with (a follower).",
            registry=r,
        )
        self.bundle_delay = Histogram(
            "riverguard_bundle_load_delay_seconds",
            "From the leader publishing a model bundle to this process scoring with it.",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.bundle_lag = Gauge(
            "riverguard_bundle_lag_seconds",
            "How long a newer model bundle has existed than the one this process scores with.",
            registry=r,
        )
        self.learning_log_head = Gauge(
            "riverguard_learning_log_head",
            "Sequence of the last learning-log entry this process's models have learned.",
            registry=r,
        )

        self._decision_layer(r)
        self._cases(r)

    def _decision_layer(self, r: CollectorRegistry) -> None:
        """Lists and the review queue (docs/decisions.md, "Lists" and "Review queue")."""
        self.list_hits = Counter(
            "riverguard_list_hits_total",
            "Transactions whose entity value is on a list, by entity and list kind.",
            ["entity", "kind"],
            registry=r,
        )
        self.list_entries = Gauge(
            "riverguard_list_entries",
            "Live (not removed, not expired) list entries in this process's index, by kind.",
            ["kind"],
            registry=r,
        )
        self.review_open = Gauge(
            "riverguard_review_queue_open", "Open items in the review queue.", registry=r
        )
        self.review_oldest = Gauge(
            "riverguard_review_queue_oldest_seconds",
            "Wall-clock age of the oldest open review item (since it was opened; 0 when none).",
            registry=r,
        )
        self.review_verdicts = Counter(
            "riverguard_review_verdicts_total",
            "Review verdicts recorded by this process, by verdict and analyst (the key's name).",
            ["verdict", "analyst"],
            registry=r,
        )
        self.rule_shadow_hits = Counter(
            "riverguard_rule_shadow_hits_total",
            "Transactions a shadow rule matched (what it would have decided; it decided nothing).",
            ["rule"],
            registry=r,
        )
        self.outbox_relayed = Counter(
            "riverguard_outbox_relayed_total",
            "Outbox rows (decisions and verdicts) this process published and deleted.",
            registry=r,
        )
        self.outbox_errors = Counter(
            "riverguard_outbox_errors_total",
            "Failed passes of the outbox relay or a webhook sender (their rows stay queued).",
            ["step"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "riverguard_webhook_deliveries_total",
            "Webhook delivery attempts by endpoint and outcome (delivered, failed, dead_lettered).",
            ["endpoint", "outcome"],
            registry=r,
        )

    def _cases(self, r: CollectorRegistry) -> None:
        """Cases (docs/cases.md): not closed and overdue per priority, closes per outcome."""
        self.cases_open = Gauge(
            "riverguard_cases_open", "Cases not closed, by priority.", ["priority"], registry=r
        )
        self.cases_overdue = Gauge(
            "riverguard_cases_overdue",
            "Cases not closed past their priority's SLA age (RIVERGUARD_CASES__SLA_*_HOURS).",
            ["priority"],
            registry=r,
        )
        self.cases_closed = Counter(
            "riverguard_cases_closed_total",
            "Cases closed by this process, by outcome.",
            ["outcome"],
            registry=r,
        )

    def watch_pool(self, read: Callable[[], Iterable[dict[str, Any]]]) -> None:
        """Export per-model gauges from ``read()`` (the pool status) at every scrape."""
        self.registry.register(PoolCollector(read))


class PoolCollector(Collector):
    """Model quality, label counts, drift and versions, read at scrape time."""

    GAUGES = (
        ("roc_auc", "riverguard_model_roc_auc", "Rolling ROC AUC over the last N labels."),
        ("average_precision", "riverguard_model_average_precision", "Rolling average precision."),
        ("log_loss", "riverguard_model_log_loss", "Rolling log loss."),
        ("labels", "riverguard_model_labels", "Labels this model has been evaluated on."),
        ("learned", "riverguard_model_learned", "Labels this model has learned."),
        ("drift_detected", "riverguard_model_drifts", "Drifts detected on the model's error."),
        ("in_drift", "riverguard_model_in_drift", "1 when the last label flagged a drift window."),
    )
    CONFUSION = "riverguard_model_confusion"

    def __init__(self, read: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self._read = read

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily]:
        rows = list(self._read())
        yield from self._guard_counters(rows)
        for key, name, doc in self.GAUGES:
            family = GaugeMetricFamily(name, doc, labels=["model", "role"])
            for row in rows:
                value = row.get(key)
                if value is not None:
                    family.add_metric([row["name"], row["role"]], float(value))
            yield family
        confusion = GaugeMetricFamily(
            self.CONFUSION,
            "Confusion counts over the rolling window at each threshold.",
            labels=["model", "role", "threshold", "cell"],
        )
        for row in rows:
            for threshold, cells in row.get("confusion", {}).items():
                for cell, count in cells.items():
                    confusion.add_metric([row["name"], row["role"], threshold, cell], float(count))
        yield confusion
        info = InfoMetricFamily(
            "riverguard_model", "Model version and role.", labels=["model", "role"]
        )
        for row in rows:
            info.add_metric([row["name"], row["role"]], {"version": str(row["version"])})
        yield info

    @staticmethod
    def _guard_counters(rows: list[dict[str, Any]]) -> Iterator[CounterMetricFamily]:
        """The pool's input guard and each model's faults, as counters since process start."""
        guarded = CounterMetricFamily(
            "riverguard_feature_values_guarded",
            "Feature values kept away from the models: dropped (not a finite number) or"
            " clipped (finite but beyond the bound).",
            labels=["kind"],
        )
        faults = CounterMetricFamily(
            "riverguard_model_faults",
            "Model calls that raised or returned an invalid probability (score fell back).",
            labels=["model", "role", "kind"],
        )
        for row in rows:
            guard = row.get("guard", {})
            for kind in ("predict_errors", "invalid_outputs", "learn_errors"):
                faults.add_metric([row["name"], row["role"], kind], float(guard.get(kind, 0)))
        if rows:  # pool-wide figures, repeated in every row
            guard = rows[0].get("guard", {})
            guarded.add_metric(["dropped"], float(guard.get("dropped_values", 0)))
            guarded.add_metric(["clipped"], float(guard.get("clipped_values", 0)))
        yield guarded
        yield faults
