"""Console room: the overview — today's decisions against the budget, the queue, the models.

Today's decisions are counted in Postgres (stored transactions scored since 00:00 UTC, every
process's; the BRIN index on ``scored_at``), not read from this process's counters, which
start at zero with the process and see only its own traffic. The count is kept for
:data:`TODAY_TTL` seconds so that a room of analysts reloading the page costs one query.
The live cutoffs come from this process's gauges (every process computes the same ones).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from app.console.pages import render
from app.console.session import need
from app.console.state import Services, services

router = APIRouter(prefix="/console", include_in_schema=False)
TODAY_TTL = 5.0
DASHBOARDS = (("Service", "riverguard-service"), ("Model monitoring", "riverguard-models"))


@dataclass
class TodayCache:
    """Today's decision counts, reread at most every ``ttl`` seconds."""

    ttl: float = TODAY_TTL
    _at: float = -1e18
    _day: str = ""
    _counts: dict[str, int] = field(default_factory=dict)

    async def counts(self, svc: Services) -> dict[str, int]:
        now = datetime.now(UTC)
        day = now.date().isoformat()
        if day != self._day or time.monotonic() - self._at > self.ttl:
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            self._counts = await svc.insights.decisions_since(midnight)
            self._at, self._day = time.monotonic(), day
        return self._counts


def _cutoff(svc: Services, decision: str) -> float | None:
    value = svc.metrics.registry.get_sample_value(
        "riverguard_decision_cutoff", {"decision": decision}
    )
    return value


def budget_rows(svc: Services, counts: dict[str, int]) -> list[dict[str, object]]:
    """Per decision: today's count and share, the target (a budget share or a threshold)."""
    total = sum(counts.values())
    decisions = svc.settings.decisions
    scoring = svc.settings.scoring
    rows = []
    for decision, budget, threshold in (
        ("review", decisions.review_budget, scoring.review_threshold),
        ("decline", decisions.decline_budget, scoring.decline_threshold),
    ):
        share = counts.get(decision, 0) / total if total else None
        rows.append(
            {
                "decision": decision,
                "count": counts.get(decision, 0),
                "share": share,
                "budget": budget,
                "threshold": threshold,
                "cutoff": _cutoff(svc, decision),
                "over": budget is not None and share is not None and share > budget * 1.1,
            }
        )
    return rows


@router.get("/")
async def overview(request: Request) -> Response:
    session = need(request)  # a console scope: review or admin
    svc = services(request)
    cache: TodayCache = request.app.state.console_today
    counts = await cache.counts(svc)
    open_items, oldest = await svc.reviews.store.queue_stats()
    now = datetime.now(UTC)
    grafana = svc.settings.console.grafana_url.rstrip("/")
    return render(
        request,
        "overview.html",
        session,
        total=sum(counts.values()),
        counts=dict(sorted(counts.items())),
        budgets=budget_rows(svc, counts),
        open_items=open_items,
        oldest=None if oldest is None else (now - oldest).total_seconds(),
        models=svc.promotions.models(),
        policy=svc.promotions.policy(),
        dashboards=[(title, f"{grafana}/d/{uid}") for title, uid in DASHBOARDS],
    )
