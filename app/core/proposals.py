"""Core room: four-eyes — a rule or list change by one key waits for a second key.

With ``RIVERGUARD_DECISIONS__FOUR_EYES=true`` the REST calls that change rules (create,
update — enabling and disabling are updates — delete) and lists (add, remove) record a
*proposal* instead of applying: its kind, target, the change as sent, what it replaces
(``before``: the diff) and, for a rule, its backtest. A key holding the ``approve`` scope
and another name approves it — the change is then applied as its proposer's, exactly as the
direct call would have — or rejects it; either way the proposal stays, with who decided and
when. Self-approval is :class:`SelfApproval`. A proposal is decided once: the store's
conditional update makes two approvals at once one approval and one :class:`NotPending`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, get_args

from app.core.backtest import BacktestSource, backtest
from app.core.lists import DuplicateEntry, ListBook, ListEntry
from app.core.rule_check import RuleError
from app.core.rulebook import RuleBook, RuleExists, RuleFields
from app.core.rules import Rule

Kind = Literal["rule_create", "rule_update", "rule_delete", "list_add", "list_remove"]
KINDS: tuple[Kind, ...] = get_args(Kind)
Status = Literal["pending", "approved", "rejected", "failed"]
BACKTEST_DAYS = 7


class SelfApproval(PermissionError):
    def __init__(self) -> None:
        super().__init__("a proposal is approved by another key than its proposer's")


class NotPending(RuntimeError):
    def __init__(self, status: str, decided_by: str | None) -> None:
        super().__init__(f"this proposal is {status}")
        self.status, self.decided_by = status, decided_by


class ProposalStore(Protocol):
    async def add(self, proposal: dict[str, Any]) -> dict[str, Any]: ...

    async def get(self, proposal_id: int) -> dict[str, Any] | None: ...

    async def find(self, status: Status | None, limit: int) -> list[dict[str, Any]]: ...

    async def decide(
        self, proposal_id: int, status: Status, who: str, now: datetime, outcome: str | None
    ) -> dict[str, Any] | None:
        """Set a pending proposal's status (pending → decided, or approved → failed); None
        when it was not in the expected state."""
        ...


class NoSuchRule(LookupError):
    """An update or delete of a rule that does not exist."""


@dataclass
class Proposals:
    """Propose, approve (and apply) or reject rule and list changes."""

    store: ProposalStore
    rules: RuleBook
    lists: ListBook
    backtests: BacktestSource
    backtest_max_rows: int = 2_000_000
    backtest_seconds: float = 60.0

    async def rule_change(
        self, kind: Kind, rule_id: str, rule: Rule | None, who: str, now: datetime
    ) -> dict[str, Any]:
        """Propose a rule change that could be applied now: vetted as a save is (``RuleError``),
        refused as the direct call would be (:class:`RuleExists`, :class:`NoSuchRule`), with
        what it replaces and the new rule's backtest over the last week."""
        existing = await self.rules.store.get(rule_id)
        if kind == "rule_create" and existing is not None:
            raise RuleExists(rule_id)
        if kind != "rule_create" and existing is None:
            raise NoSuchRule(rule_id)
        before = None if existing is None else _fields(existing)
        if rule is None:
            return await self.propose(kind, rule_id, {}, who, now, before)
        candidate = await self.rules.vet(rule)
        since = now - timedelta(days=BACKTEST_DAYS)
        tested = await backtest(candidate, self.backtests, since, now, self.backtest_max_rows,
                                seconds=self.backtest_seconds)  # fmt: skip
        return await self.propose(kind, rule_id, _fields(rule), who, now, before, tested.as_dict())

    async def propose(
        self, kind: Kind, target: str, payload: dict[str, Any], who: str, now: datetime,
        before: dict[str, Any] | None = None, backtest: dict[str, Any] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        return await self.store.add(
            {"kind": kind, "target": target, "payload": payload, "before": before,
             "backtest": backtest, "proposed_by": who, "proposed_at": now}
        )  # fmt: skip

    async def _pending(
        self, proposal_id: int, who: str, *, own: bool = False
    ) -> dict[str, Any] | None:
        proposal = await self.store.get(proposal_id)
        if proposal is None:
            return None
        if proposal["status"] != "pending":
            raise NotPending(proposal["status"], proposal["decided_by"])
        if proposal["proposed_by"] == who and not own:
            raise SelfApproval
        return proposal

    async def reject(
        self, proposal_id: int, who: str, now: datetime, reason: str | None
    ) -> dict[str, Any] | None:
        """Reject (its proposer may withdraw it: a rejection changes nothing)."""
        if await self._pending(proposal_id, who, own=True) is None:
            return None
        return await self._decide(proposal_id, "rejected", who, now, reason)

    async def approve(self, proposal_id: int, who: str, now: datetime) -> dict[str, Any] | None:
        """Approve and apply; a change that no longer applies leaves the proposal ``failed``."""
        proposal = await self._pending(proposal_id, who)
        if proposal is None:
            return None
        await self._decide(proposal_id, "approved", who, now, None)
        problem = await self._apply(proposal, now)
        if problem is None:
            return await self.store.get(proposal_id)
        return await self.store.decide(proposal_id, "failed", who, now, problem)

    async def _decide(
        self, proposal_id: int, status: Status, who: str, now: datetime, outcome: str | None
    ) -> dict[str, Any]:
        decided = await self.store.decide(proposal_id, status, who, now, outcome)
        if decided is None:  # decided by someone else between the read and this write
            current = await self.store.get(proposal_id)
            assert current is not None
            raise NotPending(current["status"], current["decided_by"])
        return decided

    async def _apply(self, proposal: dict[str, Any], now: datetime) -> str | None:
        """Apply as the proposer; a short reason (no input) when it cannot be applied now."""
        kind, target, payload = proposal["kind"], proposal["target"], proposal["payload"]
        author = proposal["proposed_by"]
        try:
            if kind == "rule_create":
                await self.rules.create(RuleFields.model_validate(payload).rule(target), author)
            elif kind == "rule_update":
                rule = RuleFields.model_validate(payload).rule(target)
                if await self.rules.replace(rule, author) is None:
                    return "the rule no longer exists"
            elif kind == "rule_delete":
                if not await self.rules.delete(target, author):
                    return "the rule no longer exists"
            elif kind == "list_add":
                await self.lists.add(_entry(payload, author, now))
            elif not await self.lists.remove(
                payload["entity"], payload["kind"], payload["value"], author, now
            ):
                return "the entry is no longer active"
        except RuleError:
            return "the rule can no longer be saved (check it again)"
        except RuleExists:
            return "a rule with this id exists now"
        except DuplicateEntry:
            return "an active entry with this entity, value and kind exists now"
        return None


def _fields(rule: Rule) -> dict[str, Any]:
    """The rule as stored (defaults filled in), without its id: a diff shows what changes."""
    return {k: v for k, v in rule.content().items() if k != "id"}


def _entry(payload: dict[str, Any], author: str, now: datetime) -> ListEntry:
    expires = payload.get("expires_at")
    return ListEntry(
        entity=payload["entity"],
        value=payload["value"],
        kind=payload["kind"],
        reason=payload["reason"],
        created_at=now,
        created_by=author,
        expires_at=None if expires is None else datetime.fromisoformat(expires),
    )
