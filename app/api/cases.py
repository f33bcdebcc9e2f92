"""API room: cases (scope ``review``): GET /v1/cases, GET /v1/cases/{id}, POST claim, release,
note and close on one case, POST /v1/cases/close for many.

The acting key's name is the analyst: the claim's holder, a note's author, the closer, and
the "who" of every audit row. Notes are free text (control characters refused, escaped in
the console's pages) and a card-number-looking note is refused without being echoed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.api import auth
from app.api.deps import State, now
from app.api.errors import problem, problem_responses
from app.core.cases import (
    MAX_BULK,
    MAX_NOTE,
    AlreadyClosed,
    CaseFilter,
    Held,
    Outcome,
    Priority,
    Status,
)
from features.schema import ID_PATTERN, MAX_ID_LENGTH, FreeText, looks_like_pan

router = APIRouter(prefix="/v1/cases", tags=["cases"])
Analyst = Annotated[auth.Principal, Depends(auth.requires("review"))]
CaseId = Annotated[int, Path(ge=1, le=2**62)]


class CaseOut(BaseModel):
    id: int
    card_id: str
    status: Status
    outcome: Outcome | None
    priority: Priority
    alerts: int
    opened_at: datetime
    updated_at: datetime
    age_seconds: float = Field(description="wall-clock time since the case opened")
    sla_seconds: float = Field(description="its priority's SLA age")
    overdue: bool
    assignee: str | None = Field(description="who holds a live claim (None: no one)")
    claimed_until: datetime | None
    closed_at: datetime | None
    closed_by: str | None


class Alert(BaseModel):
    transaction_id: str
    event_time: datetime
    kind: Literal["review", "watch"]
    score: float
    merchant_id: str
    decision: str
    amount: float | None
    currency: str | None
    label: bool | None = Field(description="the transaction's current label (None: none)")


class Note(BaseModel):
    author: str
    at: datetime
    body: str


class AuditEntry(BaseModel):
    at: datetime
    who: str
    action: str
    detail: dict[str, Any]


class CaseDetail(CaseOut):
    transactions: list[Alert]
    notes: list[Note]
    audit: list[AuditEntry]


class CasePage(BaseModel):
    cases: list[CaseOut]


class NoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: FreeText = Field(min_length=1, max_length=MAX_NOTE)


class CloseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Outcome


class BulkClose(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(min_length=1, max_length=MAX_BULK)
    outcome: Outcome


class Closed(BaseModel):
    case: CaseOut
    labels: int = Field(description="labels recorded (source review); each is learned once")


class BulkResult(BaseModel):
    id: int
    result: Literal["closed", "held", "already_closed", "not_found"]
    labels: int | None = None
    holder: str | None = None
    outcome: str | None = None


class BulkClosed(BaseModel):
    results: list[BulkResult]


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def refused(exc: Held | AlreadyClosed) -> JSONResponse:
    if isinstance(exc, Held):
        return problem(409, f"this case is held by {exc.holder}",
                       extra={"holder": exc.holder, "claimed_until": _z(exc.until)})  # fmt: skip
    return problem(409, "this case is closed",
                   extra={"outcome": exc.outcome, "closed_by": exc.closed_by})  # fmt: skip


_NONE = "no such case"
ClaimAction = Callable[[int, str, datetime], Awaitable[dict[str, Any] | None]]


async def _held(action: ClaimAction, case_id: int, principal: auth.Principal) -> Any:
    """A claim or a release by this key: the case after it, 404, or 409 (held, closed)."""
    try:
        case = await action(case_id, principal.name, now())
    except (Held, AlreadyClosed) as exc:
        return refused(exc)
    return problem(404, _NONE) if case is None else case


@router.get(
    "", response_model=CasePage, summary="Cases", responses=problem_responses(401, 403, 422)
)
async def list_cases(
    state: State,
    principal: Analyst,
    status: Annotated[Status | Literal["active"], Query(description="active: not closed")] = (
        "active"
    ),
    priority: Priority | None = None,
    assignee: Annotated[
        str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="'me': this key")
    ] = None,
    card_id: Annotated[str | None, Query(max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """Cases by priority, then oldest first (closed ones: newest closed first)."""
    if card_id is not None and looks_like_pan(card_id):
        return problem(422, "pan_rejected", [{"loc": ["query", "card_id"], "type": "pan"}])
    query = CaseFilter(
        status=status,
        priority=priority,
        assignee=principal.name if assignee == "me" else assignee,
        card_id=card_id,
        limit=limit,
    )
    return {"cases": await state.cases.find(query, now())}


@router.get(
    "/{case_id}",
    response_model=CaseDetail,
    summary="One case with its transactions, notes and audit",
    responses=problem_responses(401, 403, 404, 422),
)
async def one_case(case_id: CaseId, state: State, _: Analyst) -> Any:
    """The case, its transactions (alerts), its notes and every action on it, oldest first."""
    case = await state.cases.get(case_id, now())
    if case is None:
        return problem(404, _NONE)
    store = state.cases.store
    return {
        **case,
        "transactions": await store.alerts(case_id),
        "notes": await store.notes(case_id),
        "audit": await store.audit(case_id),
    }


@router.post(
    "/{case_id}/claim",
    response_model=CaseOut,
    summary="Claim a case (or extend one's claim)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def claim(case_id: CaseId, state: State, principal: Analyst) -> Any:
    """Holds the case for RIVERGUARD_CASES__CLAIM_MINUTES; 409 while another key holds it."""
    return await _held(state.cases.claim, case_id, principal)


@router.post(
    "/{case_id}/release",
    response_model=CaseOut,
    summary="Release a claim",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def release(case_id: CaseId, state: State, principal: Analyst) -> Any:
    """Frees the case for others; 409 while another key holds it."""
    return await _held(state.cases.release, case_id, principal)


@router.post(
    "/{case_id}/notes",
    status_code=201,
    response_model=Note,
    summary="Add a note",
    responses=problem_responses(401, 403, 404, 413, 422),
)
async def add_note(case_id: CaseId, body: NoteRequest, state: State, principal: Analyst) -> Any:
    """Free text; one that looks like it holds a card number is refused (not echoed)."""
    if looks_like_pan(body.body):
        return problem(422, "pan_rejected", [{"loc": ["body", "body"], "type": "pan"}])
    at = now()
    if not await state.cases.note(case_id, principal.name, at, body.body):
        return problem(404, _NONE)
    return {"author": principal.name, "at": at, "body": body.body}


@router.post(
    "/{case_id}/close",
    response_model=Closed,
    summary="Close a case with an outcome",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def close(case_id: CaseId, body: CloseRequest, state: State, principal: Analyst) -> Any:
    """fraud / legitimate label every transaction of the case (source review) once."""
    try:
        closed = await state.cases.close(case_id, body.outcome, principal.name, now())
    except (Held, AlreadyClosed) as exc:
        return refused(exc)
    if closed is None:
        return problem(404, _NONE)
    return {"case": closed.case, "labels": closed.labels}


@router.post(
    "/close",
    response_model=BulkClosed,
    summary="Close many cases with one outcome",
    responses=problem_responses(401, 403, 413, 422),
)
async def close_many(body: BulkClose, state: State, principal: Analyst) -> Any:
    """Each case closes on its own; a held, closed or unknown one is reported, not fatal."""
    ids = list(dict.fromkeys(body.ids))
    return {"results": await state.cases.close_many(ids, body.outcome, principal.name, now())}
