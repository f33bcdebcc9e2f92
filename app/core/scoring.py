"""The scoring use-case: REST and Kafka both call :meth:`ScoringService.score`.

One batch of decoded transactions goes through: stored-result lookup (replay / conflict),
features (one atomic, idempotent Redis step per entity), every model's score, the champion's
decision and reasons, one group-committed Postgres write, and only then an answer. A crash
anywhere before the commit leaves Redis holding a dedup marker with the features it computed,
so a retry reuses them instead of counting the transaction twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from app.core import decisions, observe
from app.core.budgets import Cutoffs
from app.core.coalesce import Coalescer
from app.core.decisions import WarmUp
from app.core.groupcommit import GroupCommitter
from app.core.metrics import Metrics
from app.core.ports import FeatureStore, ScoredRecord, ScoreStore, Stored
from features import config as feature_config
from features.schema import (
    PROBLEM_REASONS,
    ModelRef,
    Reason,
    Score,
    ShadowScore,
    Transaction,
)
from models import pool as model_pool

Path = Literal["rest", "kafka"]
Stage = Literal["features", "models", "persistence"]
STAGES: tuple[Stage, ...] = get_args(Stage)
#: rows decided between two yields to the event loop (REST requests wait at most one chunk)
CHUNK = 64
# Rejections the service itself decides, beside the decoders' reasons (a Problem's).
ServiceReason = Literal["late_event", "conflict"]
REJECTION_REASONS: dict[str, tuple[str, ...]] = {
    "transaction": (*PROBLEM_REASONS, *get_args(ServiceReason)),
    "label": PROBLEM_REASONS,
}


@dataclass(frozen=True)
class Scored:
    score: Score
    body: bytes  # the score as JSON, exactly as stored (REST answer, Kafka value)


@dataclass(frozen=True)
class Rejected:
    reason: ServiceReason
    errors: list[dict[str, Any]]


@dataclass(frozen=True)
class Conflict:
    transaction_id: str


Outcome = Scored | Rejected | Conflict
LATE = Rejected("late_event", [{"loc": ["timestamp"], "type": "late_event"}])


def digest(payload: str) -> str:
    """Digest of a transaction's canonical JSON (replay vs conflict)."""
    return hashlib.sha256(payload.encode()).hexdigest()


#: entity ("card", "merchant", "device", "country") -> the list kinds it is on
ListLookup = Callable[[Transaction, datetime], Mapping[str, Sequence[str]]]
#: (transaction, features, champion score, list hits) -> what the rules say
RuleCheck = Callable[
    [Transaction, Mapping[str, float], float, Mapping[str, Sequence[str]]], decisions.RuleResult
]


#: what a row of a batch brings to the scorer: transaction, canonical JSON, digest, features
Row = tuple[Transaction, str, str, feature_config.FeatureResult]
Decided = tuple[ScoredRecord, Score]


def _no_lists(tx: Transaction, now: datetime) -> Mapping[str, Sequence[str]]:
    return {}


def _no_rules(
    tx: Transaction, features: Mapping[str, float], score: float, hits: Mapping[str, Sequence[str]]
) -> decisions.RuleResult:
    return decisions.RuleResult()


class Scorer:
    """Champion scores, the decision layer decides, challengers score in shadow.

    ``cutoffs`` (fixed thresholds or budgets), ``lists`` and ``rules`` are swapped whole by
    whoever keeps them current (bundle follower, rule and list books); reads are plain
    attribute reads, so a decision never sees half an update.
    """

    def __init__(
        self,
        pool: model_pool.ModelPool,
        metrics: Metrics,
        feature_set: str,
        warmup: WarmUp | None = None,
        cutoffs: Cutoffs | None = None,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.feature_set = feature_set
        self.warmup = warmup or WarmUp(labels=0, frauds=0, done=True)
        self.cutoffs = cutoffs or Cutoffs(pool.thresholds.review, pool.thresholds.decline)
        self.lists: ListLookup = _no_lists
        self.rules: RuleCheck = _no_rules
        self._score_series = observe.Children(metrics.scores)

    def record(
        self,
        tx: Transaction,
        payload: str,
        digest: str,
        result: feature_config.FeatureResult,
        path: Path,
        now: datetime,
    ) -> tuple[ScoredRecord, Score]:
        """The record to store and the answer (``payload``: the canonical JSON of ``tx``)."""
        features = dict(result.features)
        scores = self.pool.score(features)
        self._observe([scores])
        return self._decide(tx, payload, digest, result, path, now, features, scores)

    def score_rows(self, rows: Sequence[Row]) -> list[list[model_pool.ModelScore]]:
        """Every model's scores of every row, champion first: each plan runs once per batch.

        One row is scored as by :meth:`record` (a plan's scalar loop beats a 1-row matrix).
        """
        if len(rows) == 1:
            scores = [self.pool.score(rows[0][3].features)]
        else:
            scores = self.pool.score_many([result.features for *_, result in rows])
        self._observe(scores)
        return scores

    def _observe(self, scores: list[list[model_pool.ModelScore]]) -> None:
        """Every model's scores of a batch into its histogram, one update per bucket."""
        for column in zip(*scores, strict=True):
            first = column[0]
            child = self._score_series.of(first.name, first.role)
            observe.observe_many(child, [s.score for s in column])

    def decide(
        self, row: Row, scores: list[model_pool.ModelScore], path: Path, now: datetime
    ) -> tuple[ScoredRecord, Score]:
        """:meth:`record` of a row whose model scores are known (:meth:`score_rows`)."""
        tx, payload, dig, result = row
        return self._decide(tx, payload, dig, result, path, now, dict(result.features), scores)

    def _decide(
        self,
        tx: Transaction,
        payload: str,
        digest: str,
        result: feature_config.FeatureResult,
        path: Path,
        now: datetime,
        features: dict[str, float],
        scores: list[model_pool.ModelScore],
    ) -> tuple[ScoredRecord, Score]:
        """The decision layer over one row's model scores; the record and the answer."""
        champion, challengers = scores[0], scores[1:]
        hits = self.lists(tx, now)
        ruled = self.rules(tx, features, champion.score, hits)
        verdict = decisions.decide(champion.score, self.cutoffs, self.warmup, hits, ruled)
        reasons = verdict.reasons
        if verdict.decided_by == "model" and verdict.decision != "approve":
            # Reasons explain a decision that stops or slows a payment; an approval needs
            # none, and explaining costs ~8 extra champion predictions.
            explained = self.pool.explain(features, top=3)
            reasons = [Reason(code=r.code, feature=r.feature, value=r.value) for r in explained]
            reasons += verdict.reasons
        for entity, kinds in hits.items():
            for kind in kinds:
                self.metrics.list_hits.labels(entity, kind).inc()
        answer = Score(
            transaction_id=tx.transaction_id,
            score=champion.score,
            decision=verdict.decision,
            model=ModelRef(name=champion.name, version=champion.version),
            shadow=[
                ShadowScore(name=s.name, version=s.version, score=s.score) for s in challengers
            ],
            reasons=reasons,
            decided_by=verdict.decided_by,
            rule_id=verdict.rule_id,
            event_time=tx.timestamp,
            scored_at=now,
            replayed=False,
        )
        record = ScoredRecord(
            transaction_id=tx.transaction_id,
            card_id=tx.card_id,
            merchant_id=tx.merchant_id,
            event_time=tx.timestamp,
            payload=payload,
            digest=digest,
            features=features,
            feature_set=self.feature_set,
            feature_status=result.status,
            scores=[_stored_score(s) for s in scores],
            score=champion.score,
            decision=verdict.decision,
            response=answer.model_dump_json(),
            source=path,
            scored_at=now,
            decided=_decided(verdict),
            reasons=[r.model_dump() for r in reasons],  # spares the store parsing the answer
            shadow_hits=",".join(ruled.shadow) or None,
        )
        return record, answer


def _decided(verdict: decisions.Verdict) -> str | None:
    """What the stored columns cannot tell of who decided (model and warm-up they can)."""
    if verdict.decided_by == "rule":
        return f"rule:{verdict.rule_id}"
    return "list" if verdict.decided_by == "list" else None


class ScoringService:
    def __init__(
        self,
        features: FeatureStore,
        scorer: Scorer,
        repository: ScoreStore,
        metrics: Metrics,
        writer: GroupCommitter[ScoredRecord, bool],
        on_stored: Callable[[Sequence[str]], None] = lambda ids: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rest_batch_max: int = 128,
    ) -> None:
        self.features = features
        self.scorer = scorer
        self.repository = repository
        self.metrics = metrics
        self.writer = writer
        self.on_stored = on_stored
        self.clock = clock
        self._rest: Coalescer[Transaction, Outcome] = Coalescer(
            self._score_rest, max_batch=rest_batch_max
        )

    async def submit(self, tx: Transaction) -> Outcome:
        """Score one REST request: requests that arrive while a batch is in flight join the
        next batch (:mod:`app.core.coalesce`), which :meth:`score` takes whole."""
        return await self._rest.submit(tx)

    async def _score_rest(self, txs: Sequence[Transaction]) -> list[Outcome]:
        return await self.score(txs, "rest")

    async def drain(self) -> None:
        """Wait for the REST batches queued or in flight (used on shutdown)."""
        await self._rest.drain()

    async def score(self, txs: Sequence[Transaction], path: Path) -> list[Outcome]:
        """Score a batch; one outcome per input, in order."""
        payloads = [tx.canonical_json() for tx in txs]
        digests = [digest(p) for p in payloads]
        stored = await self.repository.find(list({tx.transaction_id for tx in txs}))
        outcomes: list[Outcome | None] = [None] * len(txs)
        fresh: dict[str, int] = {}
        for i, (tx, dig) in enumerate(zip(txs, digests, strict=True)):
            known = stored.get(tx.transaction_id)
            if known is not None:
                outcomes[i] = _replay(known, dig, tx.transaction_id)
            elif tx.transaction_id in fresh:
                continue  # a second copy inside the batch: resolved after the first is written
            else:
                fresh[tx.transaction_id] = i
        todo = [txs[i] for i in fresh.values()]
        if todo:
            chosen = list(fresh.values())
            records, answers, late = await self._compute(
                todo, [payloads[i] for i in chosen], [digests[i] for i in chosen], path
            )
            await self._persist(records, answers, late, outcomes, fresh)
        await self._resolve_copies(txs, digests, outcomes)
        final = [o for o in outcomes if o is not None]
        assert len(final) == len(txs)
        self._count(final, path)
        return final

    async def _compute(
        self, txs: list[Transaction], payloads: list[str], digests: list[str], path: Path
    ) -> tuple[list[ScoredRecord], dict[str, Score], set[str]]:
        started = time.perf_counter()
        results = await self.features.score_batch(txs)
        self.metrics.stage.labels("features").observe(time.perf_counter() - started)
        started = time.perf_counter()
        records, answers, late = [], {}, set()
        now = self.clock()
        todo: list[Row] = []
        for tx, payload, dig, result in zip(txs, payloads, digests, results, strict=True):
            if result.status == "late":
                late.add(tx.transaction_id)
                self.metrics.rejections.labels("transaction", "late_event").inc()
            else:
                todo.append((tx, payload, dig, result))
        scores = self.scorer.score_rows(todo) if todo else []
        for index, (row, row_scores) in enumerate(zip(todo, scores, strict=True)):
            if index and index % CHUNK == 0:
                await asyncio.sleep(0)  # let REST requests in between the rows of a big batch
            record, answers[row[0].transaction_id] = self.scorer.decide(row, row_scores, path, now)
            records.append(record)
        self.metrics.stage.labels("models").observe(time.perf_counter() - started)
        return records, answers, late

    async def _persist(
        self,
        records: list[ScoredRecord],
        answers: dict[str, Score],
        late: set[str],
        outcomes: list[Outcome | None],
        fresh: dict[str, int],
    ) -> None:
        started = time.perf_counter()
        inserted = await self.writer.write_many(records) if records else []
        self.metrics.stage.labels("persistence").observe(time.perf_counter() - started)
        by_id = {r.transaction_id: r for r in records}
        lost = [r.transaction_id for r, new in zip(records, inserted, strict=True) if not new]
        winners = await self.repository.find(lost) if lost else {}
        for tx_id, index in fresh.items():
            if tx_id in late:
                outcomes[index] = LATE
            elif tx_id in winners:  # a concurrent delivery of the same id was stored first
                outcomes[index] = _replay(winners[tx_id], by_id[tx_id].digest, tx_id)
            else:
                outcomes[index] = Scored(answers[tx_id], by_id[tx_id].response.encode())
        new_ids = [r.transaction_id for r, new in zip(records, inserted, strict=True) if new]
        if new_ids:
            self.on_stored(new_ids)

    async def _resolve_copies(
        self, txs: Sequence[Transaction], digests: list[str], outcomes: list[Outcome | None]
    ) -> None:
        missing = [i for i, o in enumerate(outcomes) if o is None]
        if not missing:
            return
        stored = await self.repository.find([txs[i].transaction_id for i in missing])
        for i in missing:
            known = stored.get(txs[i].transaction_id)
            outcomes[i] = (
                LATE if known is None else _replay(known, digests[i], txs[i].transaction_id)
            )

    def _count(self, outcomes: list[Outcome], path: Path) -> None:
        """Every outcome into the counters, one update per label set (not per outcome)."""
        kinds: Counter[str] = Counter()
        decided: Counter[tuple[str, str]] = Counter()
        for outcome in outcomes:
            if isinstance(outcome, Scored):
                score = outcome.score
                kinds["replayed" if score.replayed else "scored"] += 1
                if not score.replayed:
                    decided[(score.decision, score.decided_by)] += 1
            else:
                kinds["conflict" if isinstance(outcome, Conflict) else "rejected"] += 1
        for kind, count in kinds.items():
            self.metrics.inputs.labels("transaction", path, kind).inc(count)
        if kinds["conflict"]:
            self.metrics.rejections.labels("transaction", "conflict").inc(kinds["conflict"])
        for decision, count in _sums(decided, 0).items():
            self.metrics.decisions.labels(decision).inc(count)
        for by, count in _sums(decided, 1).items():
            self.metrics.decided_by.labels(by).inc(count)


def _sums(counts: Counter[tuple[str, str]], index: int) -> Counter[str]:
    out: Counter[str] = Counter()
    for key, count in counts.items():
        out[key[index]] += count
    return out


def _stored_score(score: model_pool.ModelScore) -> dict[str, Any]:
    """A model's score as stored; a stacked model's member scores go with it, since its
    meta-learner learns from the parts it combined at scoring time."""
    stored: dict[str, Any] = {
        "name": score.name,
        "version": score.version,
        "score": score.score,
        "role": score.role,
    }
    if score.parts:
        stored["parts"] = score.parts
    return stored


def group_writer(
    store: ScoreStore, flush_ms: float, flush_max: int
) -> GroupCommitter[ScoredRecord, bool]:
    """Group-committed inserts into ``store``; each record's result says whether it was new."""

    async def flush(records: Sequence[ScoredRecord]) -> list[bool]:
        inserted = await store.insert_scored(records)
        seen: set[str] = set()
        result = []
        for record in records:  # two copies of one id in a group: only the first is new
            new = record.transaction_id in inserted and record.transaction_id not in seen
            seen.add(record.transaction_id)
            result.append(new)
        return result

    return GroupCommitter(flush, flush_ms=flush_ms, flush_max=flush_max)


def _replay(known: Stored, dig: str, transaction_id: str) -> Outcome:
    if known.digest != dig:
        return Conflict(transaction_id)
    score = Score.model_validate({**known.response, "replayed": True})
    return Scored(score, score.model_dump_json().encode())
