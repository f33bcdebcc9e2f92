"""Settings: one pydantic-settings object, env prefix ``RIVERGUARD_``, built explicitly.

Nothing here runs at import time: ``Settings()`` reads the environment when called, and tests
build their own ``Settings(...)`` with explicit values. Nested groups use ``__`` in env names,
e.g. ``RIVERGUARD_SCORING__DECLINE_THRESHOLD=0.9``. Settings are frozen once built and
validated together (the review threshold cannot exceed the decline threshold): a bad
combination stops the start with a message naming both values.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: all: scores (REST + Kafka) and is a learner candidate; api: the same without Kafka workers;
#: scorer: scores, never learns (follows the leader's bundles); learner: a learner candidate
#: that consumes no Kafka transactions (route no scoring traffic to it).
Role = Literal["all", "api", "scorer", "learner"]


class TopicSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    transactions: str = "transactions"
    labels: str = "labels"
    scores: str = "scores"
    dead_letter: str = "dead-letter"
    decisions: str = Field(default="decisions", description="decisions and verdicts, outward")
    partitions: int = Field(default=4, ge=1, le=1024)


class StreamSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    group_id: str = "riverguard"
    max_batch: int = Field(default=500, ge=1, le=10_000)
    poll_timeout_ms: int = Field(default=200, ge=10)
    stall_seconds: float = Field(default=60.0, gt=0, description="no progress → /readyz fails")
    shutdown_seconds: float = Field(default=10.0, gt=0)
    dead_letter_max_bytes: int = Field(default=64 * 1024, ge=256)


class ScoringSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    champion: str = "stack_live"
    challengers: tuple[str, ...] = ("logreg", "hat")
    review_threshold: float = Field(default=0.5, ge=0, le=1)
    decline_threshold: float = Field(default=0.7, ge=0, le=1)
    warmup_labels: int = Field(
        default=1_000, ge=0, description="labels the champion learns before its decisions count"
    )
    warmup_frauds: int = Field(
        default=10, ge=0, description="frauds among them (both conditions hold to end warm-up)"
    )
    max_future_skew_seconds: float = Field(default=300.0, ge=0)
    lateness_days: float = Field(default=7.0, ge=0, le=17)
    entity_ttl_days: float | None = Field(
        default=None,
        ge=0,
        description="card and merchant state expires this long after its last update (0: "
        "never; default: the longest feature window, 30 days, + lateness_days + 7 days)",
    )
    metrics_window: int = Field(default=10_000, ge=10)
    auto_promote: bool = False
    promotion_min_labels: int = Field(default=2_000, ge=10, description="shared labels needed")
    promotion_margin: float = Field(default=0.02, ge=0, le=1, description="AP lead needed")
    promotion_confidence: float = Field(default=0.95, gt=0, le=1, description="bootstrap share")
    promotion_every_labels: int = Field(
        default=1_000, ge=1, description="labels learned between two policy decisions"
    )
    lease_seconds: float = Field(
        default=10.0, gt=0, description="a learner that stops renewing for this long is replaced"
    )
    bundle_every_seconds: float = Field(
        default=5.0, gt=0, description="how often the leader publishes its models to followers"
    )
    max_bundle_lag_seconds: float = Field(
        default=60.0, gt=0, description="/readyz fails while a follower is behind this long"
    )
    checkpoint_every_labels: int = Field(default=1_000, ge=1)
    checkpoint_every_seconds: float = Field(default=60.0, gt=0)
    parked_label_ttl_days: float = Field(default=90.0, gt=0)

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> ScoringSettings:
        if self.review_threshold > self.decline_threshold:
            raise ValueError(
                f"review_threshold ({self.review_threshold}) must not exceed "
                f"decline_threshold ({self.decline_threshold})"
            )
        return self

    @property
    def max_future_skew(self) -> timedelta:
        return timedelta(seconds=self.max_future_skew_seconds)


class DecisionSettings(BaseModel):
    """The decision layer: budgets, rules, lists and the review queue (docs/decisions.md)."""

    model_config = ConfigDict(frozen=True)

    review_budget: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="review this share of traffic (the riskiest below the declined share); "
        "None: the fixed review_threshold",
    )
    decline_budget: float | None = Field(
        default=None, gt=0, lt=1, description="decline this share; None: the fixed threshold"
    )
    budget_window: int = Field(
        default=10_000, ge=100, description="recent transactions the budget quantiles come from"
    )
    budget_every_seconds: float = Field(
        default=10.0, gt=0, description="how often the leader rescores them with the champion"
    )
    budget_min_scores: int = Field(
        default=1_000, ge=10, description="below this many scores a budget decides nothing"
    )
    rules_file: Path | None = Field(
        default=None, description="rules (JSON) upserted at start, audited as the file's"
    )
    refresh_seconds: float = Field(
        default=1.0, gt=0, description="how often a process checks for changed rules and lists"
    )
    max_rule_length: int = Field(default=1_000, ge=10, le=10_000)
    backtest_max_rows: int = Field(default=2_000_000, ge=1)
    backtest_seconds: float = Field(
        default=60.0, gt=0, description="a backtest stops (truncated) after this long"
    )
    rule_budget_us: float = Field(
        default=200.0, gt=0, description="a rule's worst-case cost per transaction, at save"
    )
    rules_budget_us: float = Field(
        default=800.0, gt=0, description="the enabled rules' worst-case cost together, at save"
    )
    rule_check_seconds: float = Field(
        default=5.0, gt=0, le=60, description="time limit of a rule's cost measurement at save"
    )
    rule_runtime_budget_us: float = Field(
        default=1_000.0,
        gt=0,
        description="a rule over this on 3 timed evaluations in a row is disabled",
    )
    four_eyes: bool = Field(
        default=False,
        description="a rule or list change by one key waits for a second key's approval",
    )

    @model_validator(mode="after")
    def _budgets_fit(self) -> DecisionSettings:
        total = (self.review_budget or 0.0) + (self.decline_budget or 0.0)
        if total >= 0.5:
            raise ValueError(
                f"review_budget + decline_budget ({total:g}) must stay below 0.5: "
                "a budget is the riskiest few percent of traffic, not most of it"
            )
        return self


class CaseSettings(BaseModel):
    """Cases: the claim's lifetime and the SLA age per priority (docs/cases.md)."""

    model_config = ConfigDict(frozen=True)

    claim_minutes: float = Field(
        default=30.0, gt=0, le=7 * 1440, description="a claim on a case expires after this"
    )
    sla_high_hours: float = Field(default=4.0, gt=0, description="high priority: overdue after")
    sla_medium_hours: float = Field(default=24.0, gt=0, description="medium: overdue after")
    sla_low_hours: float = Field(default=72.0, gt=0, description="low: overdue after")


class ConsoleSettings(BaseModel):
    """The analysts' console under ``/console/`` (docs/console.md)."""

    model_config = ConfigDict(frozen=True)

    secret: SecretStr | None = Field(
        default=None,
        description="signs the console's session cookies; unset: random per process (sessions "
        "end at a restart, and several processes behind one address must share a set one)",
    )
    session_hours: float = Field(default=8.0, gt=0, le=24 * 7)

    @field_validator("secret", mode="before")
    @classmethod
    def _no_weak_secret(cls, value: object) -> object:
        """Empty means unset (compose passes ""); anything else must resist guessing."""
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text == "" or text is None:
            return None
        if isinstance(text, str) and len(text) < 16:
            raise ValueError("the console secret must be at least 16 characters (or unset)")
        return value

    grafana_url: str = Field(
        default="http://localhost:3000", description="base URL of the Grafana dashboards"
    )


class WebhookEndpoint(BaseModel):
    """One receiver of the decisions: its name (the metric label), URL and signing secret."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr = Field(min_length=16)


class OutboxSettings(BaseModel):
    """Decisions published outward: the outbox relay and webhooks (docs/outbox.md)."""

    model_config = ConfigDict(frozen=True)

    relay_every_seconds: float = Field(
        default=0.2, gt=0, description="how often an idle relay looks for new outbox rows"
    )
    relay_batch: int = Field(default=500, ge=1, le=10_000)
    webhooks: tuple[WebhookEndpoint, ...] = Field(
        default=(), description='JSON list of {"name", "url", "secret"}; empty: no webhooks'
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, le=100, description="failed tries before a delivery is dead-lettered"
    )
    webhook_backoff_seconds: float = Field(default=1.0, gt=0, description="first retry's wait")
    webhook_backoff_max_seconds: float = Field(default=300.0, gt=0)
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, value: tuple[WebhookEndpoint, ...]) -> tuple[WebhookEndpoint, ...]:
        names = [endpoint.name for endpoint in value]
        if len(names) != len(set(names)):
            raise ValueError("webhook endpoint names must be unique")
        return value


class PersistenceSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    flush_ms: float = Field(
        default=2.0, gt=0, description="longest wait for a group behind a commit in flight"
    )
    flush_max: int = Field(default=256, ge=1)
    pool_min: int = Field(default=2, ge=1)
    pool_max: int = Field(default=10, ge=1)
    retention_days: int | None = Field(
        default=None,
        ge=1,
        description="`riverguard db prune` drops day partitions older than this (None: keep all)",
    )

    @model_validator(mode="after")
    def _pool_bounds_in_order(self) -> PersistenceSettings:
        if self.pool_min > self.pool_max:
            raise ValueError(
                f"pool_min ({self.pool_min}) must not exceed pool_max ({self.pool_max})"
            )
        return self


class Settings(BaseSettings):
    """Every knob of the service. ``None`` URLs mean "not configured"."""

    model_config = SettingsConfigDict(
        env_prefix="RIVERGUARD_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    kafka_bootstrap: str | None = None
    redis_url: SecretStr | None = None
    database_url: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    api_keys: SecretStr | None = Field(
        default=None, description="comma-separated key=scope|scope[@name]; key may be sha256:<hex>"
    )
    dev_mode: bool = False
    role: Role = "all"
    reuse_port: bool = Field(
        default=False, description="bind with SO_REUSEPORT (set by `serve --workers N`)"
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_inflight_requests: int = Field(
        default=128,
        ge=1,
        description="intake requests (POST /v1/transactions, /v1/labels) in flight per process; "
        "more get 503 + Retry-After at once instead of queueing",
    )
    redis_max_connections: int = Field(default=8, ge=1)
    redis_cluster: bool = Field(
        default=False,
        description="RIVERGUARD_REDIS_URL names one node of a Redis Cluster (the rest are found)",
    )
    log_level: str = "INFO"

    topics: TopicSettings = Field(default_factory=TopicSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    persistence: PersistenceSettings = Field(default_factory=PersistenceSettings)
    decisions: DecisionSettings = Field(default_factory=DecisionSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    cases: CaseSettings = Field(default_factory=CaseSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)

    @field_validator("kafka_bootstrap")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    def secret(self, name: Literal["redis_url", "database_url"]) -> str | None:
        value = getattr(self, name)
        return None if value is None else str(value.get_secret_value()) or None
