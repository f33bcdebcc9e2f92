"""Console room: what the console's pages may use, and how a page finds it.

The composition root builds one state object for the whole application (``AppState`` in
``app.api.deps``); adapters never import each other, so the console names the part it uses
as a Protocol and reads the same object from ``request.app.state``.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import Request

from app.config import Settings
from app.core.backtest import BacktestSource
from app.core.cases import CaseDesk
from app.core.insights import Insights
from app.core.keys import KeyRing
from app.core.lists import ListBook
from app.core.metrics import Metrics
from app.core.promotion import Promotions
from app.core.proposals import Proposals
from app.core.reviews import ReviewDesk
from app.core.rulebook import RuleBook
from app.core.sessions import SessionStore


class Services(Protocol):
    """The part of the application state the console reads (read-only attributes)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def reviews(self) -> ReviewDesk: ...

    @property
    def rules(self) -> RuleBook: ...

    @property
    def lists(self) -> ListBook: ...

    @property
    def backtests(self) -> BacktestSource: ...

    @property
    def promotions(self) -> Promotions: ...

    @property
    def insights(self) -> Insights: ...

    @property
    def sessions(self) -> SessionStore: ...

    @property
    def cases(self) -> CaseDesk: ...

    @property
    def proposals(self) -> Proposals: ...


def services(request: Request) -> Services:
    found: Services = request.app.state.riverguard
    return found


def keyring(request: Request) -> KeyRing:
    ring: KeyRing = request.app.state.keyring
    return ring
