"""What the use-cases need from storage: record types and the ports (``typing.Protocol``).

The core never names a database or Redis client. :class:`app.postgres.repository.PgRepository`
is the production adapter of every store port here, :class:`features.store.RedisFeatureStore`
the one of :class:`FeatureStore`; ``tests/app/fakes.py`` and ``features.reference`` hold
in-memory ones, so the replay / conflict / parked-label logic is testable without a server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from features.config import FeatureResult
from features.schema import Label, Transaction


@dataclass(frozen=True)
class ScoredRecord:
    """One scored transaction, as stored (the durable record of a decision)."""

    transaction_id: str
    card_id: str
    merchant_id: str
    event_time: datetime
    payload: str  # canonical JSON of the transaction
    digest: str
    features: dict[str, float]
    feature_set: str
    feature_status: str
    scores: list[dict[str, Any]]
    score: float
    decision: str
    response: str  # the Score exactly as answered (JSON)
    source: str
    scored_at: datetime
    decided: str | None = None  # "rule:<id>" or "list" when a rule or list decided
    #: the answer's reasons as in ``response`` (None: not given, read them from ``response``)
    reasons: list[dict[str, Any]] | None = None
    #: the shadow rules that matched, comma-separated (None: none; rule ids hold no comma)
    shadow_hits: str | None = None


@dataclass(frozen=True)
class Stored:
    """What a replay needs of a stored transaction: its payload digest and its answer."""

    digest: str
    response: dict[str, Any]


@dataclass(frozen=True)
class LearnRow:
    """A stored transaction as the learner needs it: snapshot and scores given at scoring."""

    transaction_id: str
    payload: dict[str, Any]
    features: dict[str, float]
    scores: dict[str, float]
    event_time: datetime
    label_is_fraud: bool | None
    #: a stacked model's member scores at scoring time, by model name
    parts: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class LabelEntry:
    transaction_id: str
    is_fraud: bool
    labeled_at: datetime
    source: str
    status: str  # learned, parked, duplicate, relabeled
    learn: bool  # append to the learning log
    evaluate: bool = True  # update quality metrics from the stored scores (not on a flip)


@dataclass(frozen=True)
class ParkedLabel:
    """A label that arrived before its transaction, which has arrived since.

    ``current_*``: the label the transaction holds now, if one was settled after it arrived
    (its value, ``labeled_at`` and arrival seq), which adoption compares with.
    """

    seq: int
    transaction_id: str
    is_fraud: bool
    labeled_at: datetime
    source: str
    current_is_fraud: bool | None = None
    current_labeled_at: datetime | None = None
    current_seq: int | None = None


class FeatureStore(Protocol):
    """Point-in-time, idempotent per-card and per-merchant features.

    :class:`features.store.RedisFeatureStore` is the production adapter (Lua scripts on Redis
    or Valkey); :class:`features.reference.MemoryFeatureStore` is the in-memory one.
    """

    async def load_scripts(self) -> None: ...

    async def score_batch(self, txs: Sequence[Transaction]) -> list[FeatureResult]: ...

    async def apply_labels(self, items: Sequence[tuple[Label, Transaction]]) -> None: ...

    async def card_features(self, card_id: str, at: datetime | None) -> dict[str, float]: ...


class ScoreStore(Protocol):
    """Scored transactions: replay lookup and the group-committed insert."""

    async def find(self, ids: Sequence[str]) -> dict[str, Stored]: ...

    async def insert_scored(self, records: Sequence[ScoredRecord]) -> set[str]:
        """Insert; return the ids that were new (the others already existed)."""
        ...


class LabelLog(Protocol):
    """Labels, parked labels and the learning log (written by the learner alone).

    Labels arrive through :meth:`receive_labels` (any process, durable at once); the learner
    claims them in order (:meth:`received`) and settles each one — learned, duplicate,
    relabeled or parked — with :meth:`settle_labels`, which appends the gapless learning log
    under the learner's ``epoch`` (a stale epoch raises :class:`Fenced` and writes nothing).
    """

    async def receive_labels(self, labels: Sequence[Label]) -> list[int]: ...

    async def received(self, limit: int = 1000) -> list[ReceivedLabel]: ...

    async def settle_labels(
        self, settled: Sequence[tuple[int, LabelEntry]], epoch: int
    ) -> list[int | None]: ...

    async def label_statuses(self, seqs: Sequence[int]) -> dict[int, str]: ...

    async def for_learning(self, ids: Sequence[str]) -> dict[str, LearnRow]: ...

    async def parked_ready(self, limit: int = 1000) -> list[ParkedLabel]: ...

    async def adopt_parked(
        self, adopted: Sequence[tuple[int, LabelEntry]], superseded: Sequence[int], epoch: int
    ) -> list[int | None]: ...

    async def expire_parked(self, received_before: datetime) -> int: ...

    def learn_log_after(
        self, seq: int, batch: int = 2000
    ) -> AsyncIterator[tuple[int, LearnRow, bool, bool, datetime]]:
        """(learn seq, row, is_fraud, evaluate, labeled_at) after ``seq``, in learning order."""
        ...


class SnapshotStore(Protocol):
    """Versioned model snapshots (checkpoints)."""

    async def save_snapshot(
        self,
        name: str,
        version: str,
        learn_seq: int,
        feature_set: str,
        metadata: dict[str, Any],
        blob: bytes,
        epoch: int | None = None,
    ) -> None:
        """Store a snapshot; with ``epoch``, only while that epoch leads (else Fenced)."""
        ...

    async def latest_snapshot(self, name: str) -> tuple[int, bytes] | None: ...


class PromotionLog(Protocol):
    """The audit log of promotions; its newest entry names the champion."""

    async def record_promotion(self, record: dict[str, Any]) -> None: ...

    async def promotions(self) -> list[dict[str, Any]]: ...

    async def current_champion(self) -> str | None: ...


class LearnerStore(LabelLog, SnapshotStore, Protocol):
    """Everything the learner writes and reads."""


class RecordReader(Protocol):
    """Read-only views of the durable record for the API."""

    async def get(self, transaction_id: str) -> dict[str, Any] | None: ...

    async def promotions(self) -> list[dict[str, Any]]: ...


class Fenced(RuntimeError):
    """A learner write under an epoch that no longer leads: nothing was written."""


@dataclass(frozen=True)
class ReceivedLabel:
    """A label recorded durably by any process, not yet settled by the learner."""

    seq: int
    label: Label


class Leadership(Protocol):
    """The learner lease: one leader at a time, each with a higher epoch than the last."""

    epoch: int

    @property
    def leading(self) -> bool: ...

    async def acquire(self, poll: float = 1.0) -> int: ...

    async def try_acquire(self) -> bool: ...

    async def release(self) -> None: ...

    async def confirm(self) -> bool:
        """Ask the authority (not this process's belief) whether this epoch still leads."""
        ...


class BundleStore(Protocol):
    """Published model bundles, numbered in publication order; the newest one is ``latest``.

    A publication carries the leader's epoch and log position and is refused (id 0) when a
    newer epoch, or a later position of the same epoch, was published already.
    """

    async def publish(self, seq: int, blob: bytes, epoch: int = 0, force: bool = False) -> int: ...

    async def latest(self) -> int | None: ...

    async def fetch(self, bundle: int) -> bytes | None: ...

    async def published_at(self, bundle: int) -> float | None: ...


@dataclass(frozen=True)
class PromotionRequest:
    """A promotion asked of any process, applied by the leading learner alone."""

    id: int
    to_model: str
    reason: str
    requested_by: str


class PromotionRequests(Protocol):
    """Durable promotion requests; settling one writes its audit row once, under an epoch."""

    async def request(self, to_model: str, reason: str, requested_by: str) -> int: ...

    async def pending(self, limit: int = 100) -> list[PromotionRequest]: ...

    async def settle(
        self, request_id: int, record: dict[str, Any] | None, outcome: str, epoch: int | None
    ) -> bool: ...

    async def outcome(self, request_id: int) -> tuple[str, str | None] | None: ...
