"""Console room: cases — the inbox (by priority, then age), "my cases", closed cases, a case
page (its transactions, the card's timeline, notes, audit) and its actions.

Reads and actions go through the core :class:`~app.core.cases.CaseDesk` the REST API uses, so
a claim here is the same lock and a close the same labels, recorded once. Every form carries
the session's CSRF token (:func:`app.console.session.posted`); the acting analyst is the
session's key name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from app.console.pages import render
from app.console.session import MAX_FIELDS, Session, need, posted
from app.console.state import services
from app.core.cases import MAX_BULK, MAX_NOTE, OUTCOMES, AlreadyClosed, CaseFilter, Held, Outcome
from features.schema import clean_text, looks_like_pan

router = APIRouter(prefix="/console/cases", include_in_schema=False)
PAGE = 100
TIMELINE = 20
VIEWS = ("inbox", "mine", "closed")


def _filter(view: str, session: Session) -> CaseFilter:
    if view == "mine":
        return CaseFilter(assignee=session.name, limit=PAGE)
    if view == "closed":
        return CaseFilter(status="closed", limit=PAGE)
    return CaseFilter(limit=PAGE)


@router.get("")
async def inbox(request: Request) -> Response:
    session = need(request, "review")
    view = request.query_params.get("view", "inbox")
    view = view if view in VIEWS else "inbox"
    cases = await services(request).cases.find(_filter(view, session), datetime.now(UTC))
    return render(
        request,
        "cases.html",
        session,
        cases=cases,
        view=view,
        overdue=sum(c["overdue"] for c in cases),
        bulk=request.query_params.get("bulk"),
    )


def _case_id(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < len(text) <= 18 else None


async def _case_page(
    request: Request, session: Session, case_id: int | None, status: int = 200,
    error: str | None = None,
) -> Response:  # fmt: skip
    svc = services(request)
    case = None if case_id is None else await svc.cases.get(case_id, datetime.now(UTC))
    if case is None or case_id is None:
        return render(request, "message.html", session, 404, message="No such case.")
    alerts = await svc.cases.store.alerts(case_id)
    latest = max((a["event_time"] for a in alerts), default=datetime.now(UTC))
    timeline = await svc.insights.card_history(case["card_id"], latest, TIMELINE)
    return render(
        request,
        "case.html",
        session,
        status,
        case=case,
        alerts=alerts,
        in_case={a["transaction_id"] for a in alerts},
        timeline=timeline,
        notes=await svc.cases.store.notes(case_id),
        audit=await svc.cases.store.audit(case_id),
        mine=case["assignee"] == session.name,
        held=case["assignee"] not in (None, session.name),
        error=error,
    )


@router.get("/{case_id}")
async def case_page(case_id: str, request: Request) -> Response:
    session = need(request, "review")
    return await _case_page(request, session, _case_id(case_id))


def _refusal(exc: Held | AlreadyClosed) -> str:
    if isinstance(exc, Held):
        return f"Held by {exc.holder} until {exc.until.astimezone(UTC):%H:%M:%SZ}."
    return f"Already closed as {exc.outcome} by {exc.closed_by}."


@router.post("/{case_id}/{action}")
async def act(case_id: str, action: str, request: Request) -> Response:
    session, fields = await posted(request, "review")
    number = _case_id(case_id)
    desk, now = services(request).cases, datetime.now(UTC)
    if number is None or action not in ("claim", "release", "note", "close"):
        return render(request, "message.html", session, 404, message="No such case.")
    problem = _invalid(action, fields)
    if problem is not None:
        return await _case_page(request, session, number, 422, problem)
    try:
        if action == "claim":
            done: Any = await desk.claim(number, session.name, now)
        elif action == "release":
            done = await desk.release(number, session.name, now)
        elif action == "note":
            done = await desk.note(number, session.name, now, fields["note"].strip())
        else:
            done = await desk.close(number, cast(Outcome, fields["outcome"]), session.name, now)
    except (Held, AlreadyClosed) as exc:
        return await _case_page(request, session, number, 409, _refusal(exc))
    if not done:
        return render(request, "message.html", session, 404, message="No such case.")
    return RedirectResponse(f"/console/cases/{number}", 303)


def _invalid(action: str, fields: dict[str, str]) -> str | None:
    """What is wrong with the form of ``action`` (None: nothing)."""
    if action == "close" and fields.get("outcome") not in OUTCOMES:
        return "Choose an outcome: fraud, legitimate or inconclusive."
    if action != "note":
        return None
    note = fields.get("note", "").strip()
    if not note:
        return "The note is empty."
    if len(note) > MAX_NOTE:
        return f"The note is longer than {MAX_NOTE} characters."
    if looks_like_pan(note):
        return "The note looks like it holds a card number; it was not saved."
    try:
        clean_text(note)
    except ValueError:
        return "The note holds a character that cannot be stored."
    return None


@router.post("")
async def close_many(request: Request) -> Response:
    session, fields = await posted(request, "review")
    outcome = fields.get("outcome", "")
    ids = [_case_id(v) for v in await _checked(request)]
    chosen = [i for i in dict.fromkeys(ids) if i is not None][:MAX_BULK]
    if outcome not in OUTCOMES or not chosen:
        return render(request, "message.html", session, 422,
                      message="Choose cases and an outcome to close them with.")  # fmt: skip
    results = await services(request).cases.close_many(
        chosen, outcome, session.name, datetime.now(UTC)
    )
    closed = sum(r["result"] == "closed" for r in results)
    return RedirectResponse(f"/console/cases?bulk={closed}-of-{len(results)}", 303)


async def _checked(request: Request) -> list[str]:
    """The values of every ``case`` checkbox: a repeated name, which ``posted`` keeps once (the
    body was read and checked there: it is UTF-8 and within the field limit)."""
    text = (await request.body()).decode("utf-8")
    return [v for k, v in parse_qsl(text, max_num_fields=MAX_FIELDS) if k == "case"]
