"""API room: four-eyes proposals — GET /v1/proposals, GET /v1/proposals/{id}, POST approve
and reject (scope ``approve``), and :func:`propose`, which the rule and list routes call
instead of applying when ``RIVERGUARD_DECISIONS__FOUR_EYES`` is on (202 with the proposal).

Approval by the proposer's own key name is a 403 whose message says why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.api import auth
from app.api.deps import AppState, State, now
from app.api.errors import problem, problem_responses
from app.core.proposals import Kind, NotPending, SelfApproval
from features.schema import FreeText, looks_like_pan

router = APIRouter(prefix="/v1/proposals", tags=["proposals"])
Approver = Annotated[auth.Principal, Depends(auth.requires("approve"))]
ProposalId = Annotated[int, Path(ge=1, le=2**62)]


class ProposalOut(BaseModel):
    id: int
    kind: Kind
    target: str = Field(description="the rule id, or entity/kind/value of a list entry")
    payload: dict[str, Any] = Field(description="the change as sent")
    before: dict[str, Any] | None = Field(description="what it replaces (None: nothing)")
    diff: dict[str, list[Any]] = Field(description="field: [before, after], changed fields")
    backtest: dict[str, Any] | None = Field(description="a rule's, over the last 7 days")
    proposed_by: str
    proposed_at: datetime
    status: Literal["pending", "approved", "rejected", "failed"]
    decided_by: str | None
    decided_at: datetime | None
    outcome: str | None = Field(description="a rejection's reason, or why applying failed")


#: the rule and list routes' answer with four-eyes on
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "four-eyes on: a pending proposal", "model": ProposalOut}
}


class ProposalPage(BaseModel):
    proposals: list[ProposalOut]


class Rejection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: FreeText | None = Field(default=None, max_length=500)


def diff(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, list[Any]]:
    """Changed fields as [before, after] (a deletion: after is empty)."""
    old = before or {}
    names = sorted(set(old) | set(after))
    return {n: [old.get(n), after.get(n)] for n in names if old.get(n) != after.get(n)}


def shown(proposal: dict[str, Any]) -> dict[str, Any]:
    if proposal["kind"] == "list_remove":  # the payload names the entry that goes away
        return {**proposal, "diff": diff(proposal["payload"], {})}
    return {**proposal, "diff": diff(proposal["before"], proposal["payload"])}


def accepted(proposal: dict[str, Any]) -> JSONResponse:
    """202 with the pending proposal and where to find it."""
    body = ProposalOut.model_validate(shown(proposal)).model_dump(mode="json")
    return JSONResponse(body, status_code=202, headers={"Location": f"/v1/proposals/{body['id']}"})


async def propose(
    state: AppState, kind: Kind, target: str, payload: dict[str, Any], who: str
) -> JSONResponse:
    """Record a list change as a pending proposal: 202 with it."""
    return accepted(await state.proposals.propose(kind, target, payload, who, now()))


@router.get("", response_model=ProposalPage, summary="Proposals",
            responses=problem_responses(401, 403, 422))  # fmt: skip
async def list_proposals(
    state: State,
    _: Approver,
    status: Annotated[
        Literal["pending", "approved", "rejected", "failed", "all"], Query()
    ] = "pending",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """Newest first; pending ones by default."""
    found = await state.proposals.store.find(None if status == "all" else status, limit)
    return {"proposals": [shown(p) for p in found]}


@router.get("/{proposal_id}", response_model=ProposalOut, summary="One proposal",
            responses=problem_responses(401, 403, 404, 422))  # fmt: skip
async def one_proposal(proposal_id: ProposalId, state: State, _: Approver) -> Any:
    """The proposal with its diff, backtest and decision."""
    found = await state.proposals.store.get(proposal_id)
    return problem(404, "no such proposal") if found is None else shown(found)


def _refused(exc: SelfApproval | NotPending) -> JSONResponse:
    if isinstance(exc, SelfApproval):
        return problem(
            403, "self-approval refused: a second key with another name must approve this proposal"
        )
    return problem(409, f"this proposal is {exc.status}",
                   extra={"status": exc.status, "decided_by": exc.decided_by})  # fmt: skip


@router.post("/{proposal_id}/approve", response_model=ProposalOut,
             summary="Approve (and apply) a proposal",
             responses=problem_responses(401, 403, 404, 409, 422))  # fmt: skip
async def approve(proposal_id: ProposalId, state: State, principal: Approver) -> Any:
    """Applies the change as its proposer's; ``failed`` when it no longer applies."""
    try:
        done = await state.proposals.approve(proposal_id, principal.name, now())
    except (SelfApproval, NotPending) as exc:
        return _refused(exc)
    return problem(404, "no such proposal") if done is None else shown(done)


@router.post("/{proposal_id}/reject", response_model=ProposalOut, summary="Reject a proposal",
             responses=problem_responses(401, 403, 404, 409, 422))  # fmt: skip
async def reject(
    proposal_id: ProposalId, state: State, principal: Approver, body: Rejection | None = None
) -> Any:
    """Kept with who rejected it, when and why (the proposer may withdraw their own)."""
    reason = None if body is None else body.reason
    if reason is not None and looks_like_pan(reason):
        return problem(422, "pan_rejected", [{"loc": ["body", "reason"], "type": "pan"}])
    try:
        done = await state.proposals.reject(proposal_id, principal.name, now(), reason)
    except (SelfApproval, NotPending) as exc:
        return _refused(exc)
    return problem(404, "no such proposal") if done is None else shown(done)
