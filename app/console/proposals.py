"""Console room: four-eyes proposals — pending ones with their diff and backtest, decided ones
below; approve or reject (scope ``approve``). The page is open to ``admin`` keys too (they
propose: they see what waits), but only an ``approve`` key of another name decides.

:func:`propose_rule` and :func:`propose_entry` are what the rules and lists pages call instead
of saving when ``RIVERGUARD_DECISIONS__FOUR_EYES`` is on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from app.console.pages import render
from app.console.session import Refused, need, posted
from app.console.state import services
from app.core.lists import ListEntry
from app.core.proposals import Kind, NotPending, SelfApproval
from app.core.rules import Rule
from features.schema import looks_like_pan

router = APIRouter(prefix="/console/proposals", include_in_schema=False)
DECIDED = 50


def _diff(proposal: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    before, after = proposal["before"] or {}, proposal["payload"]
    if proposal["kind"] == "list_remove":
        before, after = after, {}
    names = sorted(set(before) | set(after))
    return [(n, before.get(n), after.get(n)) for n in names if before.get(n) != after.get(n)]


@router.get("")
async def proposals_page(request: Request, status: int = 200, error: str | None = None) -> Response:
    session = need(request)
    if not {"admin", "approve"} & session.scopes:
        raise Refused(403, "This page needs the 'admin' or 'approve' scope, which your key lacks.")
    store = services(request).proposals.store
    pending = await store.find("pending", 200)
    decided = [
        p for p in await store.find(None, DECIDED + len(pending)) if p["status"] != "pending"
    ]
    return render(
        request, "proposals.html", session, status, error=error,
        pending=[{**p, "diff": _diff(p)} for p in pending],
        decided=[{**p, "diff": _diff(p)} for p in decided[:DECIDED]],
        four_eyes=services(request).settings.decisions.four_eyes,
        proposed=request.query_params.get("proposed"),
    )  # fmt: skip


@router.post("/{proposal_id}")
async def decide(proposal_id: str, request: Request) -> Response:
    session, fields = await posted(request, "approve")
    desk, now = services(request).proposals, datetime.now(UTC)
    number = int(proposal_id) if proposal_id.isdigit() and len(proposal_id) <= 18 else 0
    choice = fields.get("decision", "")
    reason = fields.get("reason", "").strip()[:500] or None
    if reason is not None and looks_like_pan(reason):
        return await proposals_page(request, 422, "The reason looks like it holds a card number.")
    try:
        if choice == "approve":
            done = await desk.approve(number, session.name, now)
        elif choice == "reject":
            done = await desk.reject(number, session.name, now, reason)
        else:
            return await proposals_page(request, 422, "Choose approve or reject.")
    except SelfApproval:
        message = "Self-approval refused: a second key with another name must approve this."
        return await proposals_page(request, 403, message)
    except NotPending as exc:
        return await proposals_page(request, 409, f"Already {exc.status} by {exc.decided_by}.")
    if done is None:
        return render(request, "message.html", session, 404, message="No such proposal.")
    return RedirectResponse("/console/proposals", 303)


def proposed(proposal: dict[str, Any]) -> Response:
    return RedirectResponse(f"/console/proposals?proposed={proposal['id']}", 303)


async def propose_rule(
    request: Request, kind: Kind, rule_id: str, rule: Rule | None, who: str
) -> Response:
    """A rule change as a proposal (``RuleError``, ``RuleExists``, ``NoSuchRule`` raise)."""
    desk = services(request).proposals
    return proposed(await desk.rule_change(kind, rule_id, rule, who, datetime.now(UTC)))


async def propose_entry(request: Request, kind: Kind, entry: ListEntry, who: str) -> Response:
    """A list change as a proposal, with the payload the REST API would have sent."""
    payload: dict[str, Any] = {"entity": entry.entity, "kind": entry.kind, "value": entry.value}
    if kind == "list_add":
        expires = None if entry.expires_at is None else entry.expires_at.isoformat()
        payload.update(reason=entry.reason, expires_at=expires)
    target = f"{entry.entity}/{entry.kind}/{entry.value}"
    desk = services(request).proposals
    return proposed(await desk.propose(kind, target, payload, who, datetime.now(UTC)))
