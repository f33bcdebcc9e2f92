"""Turn a transaction and its features into the stored record and the Score answer."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from app.metrics import Metrics
from app.repository import ScoredRecord
from features import config as feature_config
from features.schema import ModelRef, Reason, Score, ShadowScore, Transaction
from models import pool as model_pool


class Scorer:
    """Champion decides, challengers score in shadow; reasons explain the champion's score."""

    def __init__(self, pool: model_pool.ModelPool, metrics: Metrics, feature_set: str) -> None:
        self.pool = pool
        self.metrics = metrics
        self.feature_set = feature_set

    def record(
        self,
        tx: Transaction,
        payload: str,
        digest: str,
        result: feature_config.FeatureResult,
        path: Literal["rest", "kafka"],
        now: datetime,
    ) -> tuple[ScoredRecord, Score]:
        """The record to store and the answer (``payload``: the canonical JSON of ``tx``)."""
        features = dict(result.features)
        scores = self.pool.score(features)
        champion, challengers = scores[0], scores[1:]
        decision = self.pool.decide(champion.score)
        # Reasons explain a decision that stops or slows a payment; an approval needs none,
        # and explaining costs ~8 extra champion predictions.
        explained = self.pool.explain(features, top=3) if decision != "approve" else []
        reasons = [Reason(code=r.code, feature=r.feature, value=r.value) for r in explained]
        for s in scores:
            self.metrics.scores.labels(s.name, s.role).observe(s.score)
        answer = Score(
            transaction_id=tx.transaction_id,
            score=champion.score,
            decision=decision,
            model=ModelRef(name=champion.name, version=champion.version),
            shadow=[
                ShadowScore(name=s.name, version=s.version, score=s.score) for s in challengers
            ],
            reasons=reasons,
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
            scores=[
                {"name": s.name, "version": s.version, "score": s.score, "role": s.role}
                for s in scores
            ],
            score=champion.score,
            decision=decision,
            response=answer.model_dump_json(),
            source=path,
            scored_at=now,
        )
        return record, answer
