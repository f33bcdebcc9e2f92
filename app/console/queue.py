"""Console room: the review queue — open items with filters, an item page, verdicts.

Reads and verdicts go through the core :class:`~app.core.reviews.ReviewDesk` the REST API
uses, so a verdict here is the same ``source=review`` label, recorded once. The filters ride
along in the query string from the list to each item and on to the next one, so ``n`` (and a
verdict) moves to the next open item of the same filtered order.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import QueryParams

from app.console.pages import render
from app.console.session import Session, need, posted
from app.console.state import services
from app.core.reviews import MAX_NOTE, VERDICTS, AlreadyDecided, ReviewFilter, Verdict
from features.schema import ID_PATTERN, MAX_AMOUNT, MAX_ID_LENGTH, looks_like_pan

router = APIRouter(prefix="/console/queue", include_in_schema=False)
PAGE = 50
HISTORY = 10
_REASON = re.compile(r"[a-z0-9_]{1,64}")
_ID = re.compile(ID_PATTERN)
_FILTERS = ("order", "reason", "min_amount", "max_amount", "older_than")


def _amount(text: str) -> float | None:
    value = float(text)  # ValueError for text that is no number
    if not math.isfinite(value) or not 0 <= value <= float(MAX_AMOUNT):
        raise ValueError("range")
    return value


def parse_filter(params: QueryParams) -> tuple[ReviewFilter, dict[str, str], dict[str, str]]:
    """(filter, the valid values as given, errors by field) from a query string."""
    values = {k: params.get(k, "").strip() for k in _FILTERS}
    errors: dict[str, str] = {}
    order = values["order"] or "score"
    if order not in ("score", "age"):
        errors["order"], order = "score or age", "score"
    reason = values["reason"] or None
    if reason is not None and not _REASON.fullmatch(reason):
        errors["reason"], reason = "a reason code: a-z, 0-9 and _", None
    amounts: dict[str, float | None] = {}
    for name in ("min_amount", "max_amount"):
        try:
            amounts[name] = _amount(values[name]) if values[name] else None
        except ValueError:
            errors[name], amounts[name] = f"a number from 0 to {MAX_AMOUNT}", None
    older: datetime | None = None
    if values["older_than"]:
        try:
            minutes = float(values["older_than"])
            if not 0 <= minutes <= 10 * 365 * 1440:
                raise ValueError("range")
            older = datetime.now(UTC) - timedelta(minutes=minutes)
        except ValueError:
            errors["older_than"] = "minutes since the item opened: a number ≥ 0"
    query = ReviewFilter(
        order="age" if order == "age" else "score",
        min_amount=amounts["min_amount"],
        max_amount=amounts["max_amount"],
        reason=reason,
        opened_before=older,
        limit=PAGE,
    )
    kept = {k: v for k, v in values.items() if v and k not in errors}
    return query, kept, errors


def _carry(kept: dict[str, str]) -> str:
    return urlencode(kept)


@router.get("")
async def queue_page(request: Request) -> Response:
    session = need(request, "review")
    svc = services(request)
    query, kept, errors = parse_filter(request.query_params)
    items = [] if errors else await svc.reviews.store.open_items(query)
    count, oldest = await svc.reviews.store.queue_stats()
    now = datetime.now(UTC)
    for item in items:
        item["waiting"] = (now - datetime.fromisoformat(item["opened_at"])).total_seconds()
    return render(
        request,
        "queue.html",
        session,
        422 if errors else 200,
        items=items,
        count=count,
        oldest=None if oldest is None else (now - oldest).total_seconds(),
        values=kept,
        errors=errors,
        carry=_carry(kept),
        done=request.query_params.get("done") == "1",
    )


def _valid_id(transaction_id: str) -> bool:
    return len(transaction_id) <= MAX_ID_LENGTH and _ID.fullmatch(transaction_id) is not None


async def _next_id(request: Request, query: ReviewFilter, after: str) -> str | None:
    found = await services(request).reviews.store.open_items(replace(query, after=after, limit=1))
    return str(found[0]["transaction_id"]) if found else None


async def _item_page(
    request: Request,
    session: Session,
    item: dict[str, Any],
    status: int = 200,
    error: str | None = None,
) -> Response:
    svc = services(request)
    query, kept, _ = parse_filter(request.query_params)
    history = await svc.insights.card_history(
        item["card_id"], datetime.fromisoformat(item["event_time"]), HISTORY
    )
    following = await _next_id(request, query, item["transaction_id"])
    return render(
        request,
        "item.html",
        session,
        status,
        item=item,
        history=history,
        following=following,
        carry=_carry(kept),
        error=error,
        features=sorted(item["features"].items()),
    )


@router.get("/{transaction_id}")
async def item_page(transaction_id: str, request: Request) -> Response:
    session = need(request, "review")
    item = None
    if _valid_id(transaction_id):
        item = await services(request).reviews.store.item(transaction_id)
    if item is None:
        return render(request, "message.html", session, 404, message="No such review item.")
    return await _item_page(request, session, item)


@router.post("/{transaction_id}")
async def verdict(transaction_id: str, request: Request) -> Response:
    session, fields = await posted(request, "review")
    svc = services(request)
    item = await svc.reviews.store.item(transaction_id) if _valid_id(transaction_id) else None
    if item is None:
        return render(request, "message.html", session, 404, message="No such review item.")
    choice = fields.get("verdict", "")
    note = fields.get("note", "").strip() or None
    problem = None
    if choice not in VERDICTS:
        problem = "Choose a verdict: fraud, legitimate or unsure."
    elif note is not None and len(note) > MAX_NOTE:
        problem = f"The note is longer than {MAX_NOTE} characters."
    elif note is not None and looks_like_pan(note):
        problem = "The note looks like it holds a card number; it was not saved."
    if problem is not None:
        return await _item_page(request, session, item, 422, problem)
    try:
        closed = await svc.reviews.decide(
            transaction_id, cast(Verdict, choice), note, session.name, datetime.now(UTC)
        )
    except AlreadyDecided as first:
        message = f"Already decided: {first.verdict} by {first.analyst}."
        item = await svc.reviews.store.item(transaction_id) or item
        return await _item_page(request, session, item, 409, message)
    if closed is None:
        return render(request, "message.html", session, 404, message="No such review item.")
    query, kept, _ = parse_filter(request.query_params)
    following = await _next_id(request, query, transaction_id)
    carry = _carry(kept)
    if following is None:
        return RedirectResponse(f"/console/queue?{urlencode({**kept, 'done': '1'})}", 303)
    return RedirectResponse(f"/console/queue/{following}?{carry}", 303)
