"""Shared route dependencies: what the routes may use, and the raw request body."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.core.backtest import BacktestSource
from app.core.cases import CaseDesk
from app.core.insights import Insights
from app.core.learning import Learner
from app.core.lists import ListBook
from app.core.metrics import Metrics
from app.core.ports import FeatureStore, RecordReader
from app.core.promotion import Promotions
from app.core.proposals import Proposals
from app.core.readiness import Readiness
from app.core.reviews import ReviewDesk
from app.core.rulebook import RuleBook
from app.core.scoring import ScoringService
from app.core.sessions import SessionStore


@dataclass(frozen=True)
class AppState:
    """Everything a route may touch, built once by the composition root (``app.bootstrap``)."""

    settings: Settings
    readiness: Readiness
    metrics: Metrics
    service: ScoringService
    learner: Learner
    promotions: Promotions
    features: FeatureStore
    records: RecordReader
    lists: ListBook
    reviews: ReviewDesk
    rules: RuleBook  # the scoring path reads rules.current
    backtests: BacktestSource
    insights: Insights  # read-only views for the console (card history, rule hits)
    sessions: SessionStore  # the console's server-side sessions
    cases: CaseDesk
    proposals: Proposals  # four-eyes: rule and list changes awaiting a second key


async def get_state(request: Request) -> AppState:
    """The app state (``async``: FastAPI runs a plain ``def`` dependency on a thread pool)."""
    state: AppState = request.app.state.riverguard
    return state


State = Annotated[AppState, Depends(get_state)]


def now() -> datetime:
    return datetime.now(UTC)


async def raw_body(request: Request) -> bytes:
    """The body bytes (size already bounded by the BodySizeLimit middleware)."""
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]
