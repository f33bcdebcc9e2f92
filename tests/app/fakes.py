"""In-memory implementations of the core's ports (``app.core.ports``), for server-free tests.

They keep the semantics the Postgres adapter has — insert-if-absent, one learning-log sequence,
parked labels adopted once their transaction exists — and nothing more.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.core.ports import (
    Fenced,
    LabelEntry,
    LearnRow,
    ParkedLabel,
    ReceivedLabel,
    ScoredRecord,
    Stored,
)
from features.schema import Label


@dataclass
class _Label:
    seq: int
    entry: LabelEntry
    status: str
    received_at: datetime


@dataclass
class MemoryRecords:
    """ScoreStore, LabelLog, SnapshotStore, PromotionLog and RecordReader in dictionaries."""

    transactions: dict[str, ScoredRecord] = field(default_factory=dict)
    current_label: dict[str, bool] = field(default_factory=dict)
    current_order: dict[str, tuple[datetime, int]] = field(
        default_factory=dict
    )  # its labeled_at, seq
    labels: list[_Label] = field(default_factory=list)
    learn_log: list[tuple[int, str, bool, bool]] = field(default_factory=list)
    learned_at: dict[int, datetime] = field(default_factory=dict)  # learn seq -> labeled_at
    snapshots: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    promotion_log: list[dict[str, Any]] = field(default_factory=list)
    inserts: int = 0  # insert_scored calls (group commits)
    epoch: int = 0  # the leading learner's epoch (the lease)

    # ---- ScoreStore ---------------------------------------------------------------------
    async def find(self, ids: Sequence[str]) -> dict[str, Stored]:
        found = (self.transactions[i] for i in ids if i in self.transactions)
        return {r.transaction_id: Stored(r.digest, json.loads(r.response)) for r in found}

    async def insert_scored(self, records: Sequence[ScoredRecord]) -> set[str]:
        self.inserts += 1
        new = set()
        for record in records:
            if record.transaction_id not in self.transactions:
                self.transactions[record.transaction_id] = record
                new.add(record.transaction_id)
        return new

    # ---- LabelLog -----------------------------------------------------------------------
    async def for_learning(self, ids: Sequence[str]) -> dict[str, LearnRow]:
        return {i: self._learn_row(i) for i in ids if i in self.transactions}

    async def receive_labels(self, labels: Sequence[Label]) -> list[int]:
        seqs = []
        for label in labels:
            seq = len(self.labels) + 1
            entry = LabelEntry(
                label.transaction_id, label.is_fraud, label.labeled_at, label.source,
                "received", learn=False,
            )  # fmt: skip
            self.labels.append(_Label(seq, entry, "received", datetime.now(UTC)))
            seqs.append(seq)
        return seqs

    async def received(self, limit: int = 1000) -> list[ReceivedLabel]:
        waiting = [lb for lb in self.labels if lb.status == "received"][:limit]
        return [
            ReceivedLabel(
                lb.seq,
                Label(
                    transaction_id=lb.entry.transaction_id, is_fraud=lb.entry.is_fraud,
                    labeled_at=lb.entry.labeled_at, source=lb.entry.source,  # type: ignore[arg-type]
                ),
            )
            for lb in waiting
        ]  # fmt: skip

    async def settle_labels(
        self, settled: Sequence[tuple[int, LabelEntry]], epoch: int
    ) -> list[int | None]:
        self._fence(epoch)
        for label in self.labels:
            for seq, entry in settled:
                if label.seq == seq and label.status == "received":
                    label.status, label.entry = entry.status, entry
        return self._apply(list(settled))

    async def label_statuses(self, seqs: Sequence[int]) -> dict[int, str]:
        return {lb.seq: lb.status for lb in self.labels if lb.seq in seqs}

    def _fence(self, epoch: int) -> None:
        if epoch != self.epoch:
            raise Fenced(f"epoch {epoch} is stale (the lease is at {self.epoch})")

    async def parked_ready(self, limit: int = 1000) -> list[ParkedLabel]:
        ready = [
            ParkedLabel(
                lb.seq, lb.entry.transaction_id, lb.entry.is_fraud, lb.entry.labeled_at,
                lb.entry.source, self.current_label.get(lb.entry.transaction_id),
                *self.current_order.get(lb.entry.transaction_id, (None, None)),
            )
            for lb in self.labels
            if lb.status == "parked" and lb.entry.transaction_id in self.transactions
        ]  # fmt: skip
        return ready[:limit]

    async def adopt_parked(
        self, adopted: Sequence[tuple[int, LabelEntry]], superseded: Sequence[int], epoch: int
    ) -> list[int | None]:
        self._fence(epoch)
        for label in self.labels:
            if label.seq in superseded:
                label.status = "superseded"
        statuses = {seq: entry.status for seq, entry in adopted}
        for label in self.labels:
            if label.seq in statuses:
                label.status = statuses[label.seq]
        return self._apply(list(adopted))

    async def expire_parked(self, received_before: datetime) -> int:
        expired = [
            lb for lb in self.labels if lb.status == "parked" and lb.received_at < received_before
        ]
        for label in expired:
            label.status = "expired"
        return len(expired)

    async def learn_log_after(
        self, seq: int, batch: int = 2000
    ) -> AsyncIterator[tuple[int, LearnRow, bool, bool, datetime]]:
        for log_seq, tx_id, is_fraud, evaluate in self.learn_log:
            if log_seq > seq:
                row = self._learn_row(tx_id)
                yield log_seq, row, is_fraud, evaluate, self.learned_at[log_seq]

    # ---- SnapshotStore ------------------------------------------------------------------
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
        if epoch is not None:
            self._fence(epoch)
        self.snapshots.setdefault(name, []).append((learn_seq, blob))

    async def latest_snapshot(self, name: str) -> tuple[int, bytes] | None:
        kept = self.snapshots.get(name)
        return kept[-1] if kept else None

    # ---- PromotionLog and RecordReader ---------------------------------------------------
    async def record_promotion(self, record: dict[str, Any]) -> None:
        self.promotion_log.append(record)

    async def promotions(self) -> list[dict[str, Any]]:
        return list(self.promotion_log)

    async def current_champion(self) -> str | None:
        return self.promotion_log[-1]["to_model"] if self.promotion_log else None

    async def get(self, transaction_id: str) -> dict[str, Any] | None:
        record = self.transactions.get(transaction_id)
        if record is None:
            return None
        return {
            "score": json.loads(record.response),
            "label": self.current_label.get(record.transaction_id),
        }

    # ---- helpers --------------------------------------------------------------------------
    def _apply(self, items: list[tuple[int, LabelEntry]]) -> list[int | None]:
        out: list[int | None] = []
        for label_seq, entry in items:
            if entry.status in ("learned", "relabeled"):
                self.current_label[entry.transaction_id] = entry.is_fraud
                self.current_order[entry.transaction_id] = (entry.labeled_at, label_seq)
            if entry.learn:
                seq = len(self.learn_log) + 1
                self.learn_log.append((seq, entry.transaction_id, entry.is_fraud, entry.evaluate))
                self.learned_at[seq] = entry.labeled_at
                out.append(seq)
            else:
                out.append(None)
        return out

    def _learn_row(self, transaction_id: str) -> LearnRow:
        record = self.transactions[transaction_id]
        return LearnRow(
            transaction_id=transaction_id,
            payload=json.loads(record.payload),
            features=record.features,
            scores={s["name"]: float(s["score"]) for s in record.scores},
            parts={s["name"]: s["parts"] for s in record.scores if s.get("parts")},
            event_time=record.event_time,
            label_is_fraud=self.current_label.get(transaction_id),
        )
