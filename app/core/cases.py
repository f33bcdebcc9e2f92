"""Core room: cases — the alerts of one card grouped into one case an analyst team works.

An alert (a transaction decided ``review``, or one with a watch-list hit) joins its card's open
case or opens one, in the statement that stores its record (see migration 016). A case moves
open → investigating (its first claim) → closed, with an outcome: ``fraud``, ``legitimate`` or
``inconclusive``. A claim is a lock that expires (``RIVERGUARD_CASES__CLAIM_MINUTES``): while
it is live, another analyst sees who holds it and cannot claim, release or close the case
(:class:`Held`). Closing as fraud or legitimate records one label (``source=review``) per
transaction of the case that has none from a review yet, in the closing transaction, through
the durable label intake the learner claims and learns once; the case's open review items are
closed with it. Every action is one audit row: who (the key's name), when, what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, get_args

from app.core.metrics import Metrics

Status = Literal["open", "investigating", "closed"]
STATUSES: tuple[Status, ...] = get_args(Status)
Outcome = Literal["fraud", "legitimate", "inconclusive"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
Priority = Literal["high", "medium", "low"]
PRIORITIES: tuple[Priority, ...] = get_args(Priority)  # rank 1, 2, 3 in the store
MAX_NOTE = 2000
MAX_BULK = 200


@dataclass(frozen=True)
class Sla:
    """How long a case of each priority may stay unclosed (seconds) before it is overdue."""

    high: float = 4 * 3600
    medium: float = 24 * 3600
    low: float = 72 * 3600

    def of(self, priority: str) -> float:
        seconds: float = getattr(self, priority)
        return seconds


@dataclass(frozen=True)
class CaseFilter:
    status: Status | Literal["active"] = "active"  # active: not closed
    priority: Priority | None = None
    assignee: str | None = None
    card_id: str | None = None
    limit: int = 50


class CaseError(RuntimeError):
    """A refused action (no input in the message)."""


class Held(CaseError):
    """Another analyst's claim is live: who holds it, until when."""

    def __init__(self, holder: str, until: datetime) -> None:
        super().__init__(f"held by {holder}")
        self.holder, self.until = holder, until


class AlreadyClosed(CaseError):
    def __init__(self, outcome: str, closed_by: str) -> None:
        super().__init__(f"already closed: {outcome}")
        self.outcome, self.closed_by = outcome, closed_by


@dataclass(frozen=True)
class CaseClosed:
    case: dict[str, Any]
    labels: int  # labels recorded now (transactions that had no review label yet)


class CaseStore(Protocol):
    async def cases(self, query: CaseFilter) -> list[dict[str, Any]]: ...

    async def case(self, case_id: int) -> dict[str, Any] | None:
        """The case row; None when there is none."""
        ...

    async def alerts(self, case_id: int) -> list[dict[str, Any]]: ...

    async def notes(self, case_id: int) -> list[dict[str, Any]]: ...

    async def audit(self, case_id: int) -> list[dict[str, Any]]: ...

    async def claim(self, case_id: int, who: str, now: datetime, hold: timedelta) -> bool:
        """Claim (or extend one's own claim); False when no such case. Raises :class:`Held`,
        :class:`AlreadyClosed`."""
        ...

    async def release(self, case_id: int, who: str, now: datetime) -> bool: ...

    async def note(self, case_id: int, who: str, now: datetime, body: str) -> bool: ...

    async def close(self, case_id: int, outcome: Outcome, who: str, now: datetime) -> int | None:
        """Close; the number of labels recorded, None when no such case."""
        ...

    async def counts(self, now: datetime, sla: Sla) -> dict[str, tuple[int, int]]:
        """Per priority: (cases not closed, of which overdue)."""
        ...


class LabelNudge(Protocol):
    def claim_soon(self) -> None: ...


@dataclass
class CaseDesk:
    """The case use-case: read, claim, release, annotate and close cases; the case gauges."""

    store: CaseStore
    metrics: Metrics
    sla: Sla
    hold: timedelta
    learner: LabelNudge | None = None

    def shown(self, case: dict[str, Any], now: datetime) -> dict[str, Any]:
        """A case row with its SLA age, its limit, overdue, and whether its claim is live."""
        age = max((now - case["opened_at"]).total_seconds(), 0.0)
        limit = self.sla.of(case["priority"])
        until = case["claimed_until"]
        live = until is not None and until > now
        return {
            **case,
            "age_seconds": age,
            "sla_seconds": limit,
            "overdue": case["status"] != "closed" and age > limit,
            "assignee": case["assignee"] if live else None,
            "claimed_until": until if live else None,
        }

    async def find(self, query: CaseFilter, now: datetime) -> list[dict[str, Any]]:
        return [self.shown(c, now) for c in await self.store.cases(query)]

    async def get(self, case_id: int, now: datetime) -> dict[str, Any] | None:
        case = await self.store.case(case_id)
        return None if case is None else self.shown(case, now)

    async def claim(self, case_id: int, who: str, now: datetime) -> dict[str, Any] | None:
        if not await self.store.claim(case_id, who, now, self.hold):
            return None
        return await self.get(case_id, now)

    async def release(self, case_id: int, who: str, now: datetime) -> dict[str, Any] | None:
        if not await self.store.release(case_id, who, now):
            return None
        return await self.get(case_id, now)

    async def note(self, case_id: int, who: str, now: datetime, body: str) -> bool:
        return await self.store.note(case_id, who, now, body)

    async def close(
        self, case_id: int, outcome: Outcome, who: str, now: datetime
    ) -> CaseClosed | None:
        labels = await self.store.close(case_id, outcome, who, now)
        if labels is None:
            return None
        self.metrics.cases_closed.labels(outcome).inc()
        if labels and self.learner is not None:
            self.learner.claim_soon()  # a leading learner here settles them now
        case = await self.get(case_id, now)
        assert case is not None
        return CaseClosed(case, labels)

    async def close_many(
        self, case_ids: list[int], outcome: Outcome, who: str, now: datetime
    ) -> list[dict[str, Any]]:
        """Close each case on its own (one refusal does not stop the others); one result each."""
        results: list[dict[str, Any]] = []
        for case_id in case_ids:
            try:
                closed = await self.close(case_id, outcome, who, now)
            except Held as held:
                results.append({"id": case_id, "result": "held", "holder": held.holder})
                continue
            except AlreadyClosed as done:
                results.append({"id": case_id, "result": "already_closed", "outcome": done.outcome})
                continue
            if closed is None:
                results.append({"id": case_id, "result": "not_found"})
            else:
                results.append({"id": case_id, "result": "closed", "labels": closed.labels})
        return results

    async def observe(self, now: datetime) -> None:
        counts = await self.store.counts(now, self.sla)
        for priority in PRIORITIES:
            active, overdue = counts.get(priority, (0, 0))
            self.metrics.cases_open.labels(priority).set(active)
            self.metrics.cases_overdue.labels(priority).set(overdue)
