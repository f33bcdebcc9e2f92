"""Console room: allow / block / watch lists (scope ``admin``) — search, add, remove.

Changes go through the core :class:`~app.core.lists.ListBook` the REST API uses: the entry
counts at once in this process and within a refresh in the others; a removal keeps the entry
as history with the key's name. Values are checked as the API checks them; a value or reason
that looks like a card number is refused and never shown back. A listed value is shown masked
and never sent back in a form: the remove button posts the entry's id.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from app.console import proposals
from app.console.pages import render
from app.console.session import Session, need, posted
from app.console.state import services
from app.core.lists import (
    ENTITIES,
    FIELDS,
    KINDS,
    DuplicateEntry,
    Entity,
    Kind,
    ListEntry,
    ListQuery,
    value_problem,
)
from features.schema import ID_PATTERN, MAX_ID_LENGTH, looks_like_pan, pan_forbidden

router = APIRouter(prefix="/console/lists", include_in_schema=False)
PAGE = 200
_PREFIX = re.compile(ID_PATTERN)
_PROBLEMS = {
    "pan": "looks like a card number",
    "country": "an ISO 3166 country code such as FR",
}


def _entity(text: str) -> Entity | None:
    return text if text in ENTITIES else None


def _kind(text: str) -> Kind | None:
    return text if text in KINDS else None


def _search(params: Any) -> tuple[ListQuery, dict[str, str], dict[str, str]]:
    values = {k: str(params.get(k, "")).strip() for k in ("entity", "kind", "prefix")}
    errors: dict[str, str] = {}
    entity, kind = _entity(values["entity"]), _kind(values["kind"])
    prefix = values["prefix"] or None
    if prefix is not None:
        pan = pan_forbidden(FIELDS[entity], prefix) if entity else looks_like_pan(prefix)
        if pan or len(prefix) > MAX_ID_LENGTH or not _PREFIX.fullmatch(prefix):
            errors["prefix"] = "looks like a card number" if pan else "letters, digits, _ . : -"
            values["prefix"], prefix = "", None
    flags = {k: params.get(k) == "on" for k in ("include_expired", "include_removed")}
    query = ListQuery(
        entity=entity,
        kind=kind,
        prefix=prefix,
        limit=PAGE,
        **flags,
    )
    values.update({k: "on" for k, v in flags.items() if v})
    return query, values, errors


async def _page(
    request: Request,
    session: Session,
    status: int = 200,
    added: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
) -> Response:
    query, values, search_errors = _search(request.query_params)
    now = datetime.now(UTC)
    entries = await services(request).lists.search(query, now)
    return render(
        request, "lists.html", session, 422 if search_errors and status == 200 else status,
        entries=entries, values=values, errors={**search_errors, **(errors or {})},
        added=added or {"entity": "card", "kind": "block"}, entities=ENTITIES, kinds=KINDS,
        now=now, message=message,
    )  # fmt: skip


@router.get("")
async def lists_page(request: Request) -> Response:
    return await _page(request, need(request, "admin"))


def _expiry(text: str, now: datetime) -> tuple[datetime | None, str | None]:
    """An expiry from a ``datetime-local`` field (read as UTC), or an error."""
    if not text:
        return None, None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None, "a date and time, e.g. 2026-11-30T23:59 (UTC)"
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return (moment, None) if moment > now else (None, "already past")


@router.post("")
async def add_entry(request: Request) -> Response:
    session, fields = await posted(request, "admin")
    added = {k: fields.get(k, "").strip() for k in ("entity", "kind", "value", "reason", "expires")}
    errors: dict[str, str] = {}
    now = datetime.now(UTC)
    entity, kind = _entity(added["entity"]), _kind(added["kind"])
    if entity is None:
        errors["entity"], entity = "card, merchant, device or country", "card"
    if kind is None:
        errors["kind"] = "allow, block or watch"
    problem = value_problem(entity, added["value"]) if added["value"] else "missing"
    if problem is not None:
        errors["value"] = _PROBLEMS.get(problem, f"not a valid {entity} value ({problem})")
        if problem == "pan":
            added["value"] = ""  # never sent back
    if not added["reason"] or len(added["reason"]) > 500:
        errors["reason"] = "a reason of 1 to 500 characters"
    elif looks_like_pan(added["reason"]):
        errors["reason"], added["reason"] = "looks like it holds a card number", ""
    expires, expiry_error = _expiry(added["expires"], now)
    if expiry_error:
        errors["expires"] = expiry_error
    if errors or kind is None:
        return await _page(request, session, 422, added, errors)
    entry = ListEntry(
        entity=entity,
        value=added["value"],
        kind=kind,
        reason=added["reason"],
        created_at=now,
        created_by=session.name,
        expires_at=expires,
    )
    try:
        if services(request).settings.decisions.four_eyes:
            return await proposals.propose_entry(request, "list_add", entry, session.name)
        await services(request).lists.add(entry)
    except DuplicateEntry:
        return await _page(
            request, session, 409, added, {"value": "already listed so (an active entry)"}
        )
    return RedirectResponse("/console/lists", 303)


@router.post("/remove")
async def remove_entry(request: Request) -> Response:
    session, fields = await posted(request, "admin")
    # the form names the entry by id: a value never travels back to the browser unmasked
    book = services(request).lists
    await book.refresh()  # an entry added by another process is known here too
    entry_id = fields.get("id", "")
    entry = book.index.entry(int(entry_id)) if entry_id.isdigit() and len(entry_id) < 19 else None
    removed = None
    if entry is not None:
        now = datetime.now(UTC)
        if services(request).settings.decisions.four_eyes:
            return await proposals.propose_entry(request, "list_remove", entry, session.name)
        removed = await book.remove(entry.entity, entry.kind, entry.value, session.name, now)
    if removed is None:
        return await _page(request, session, 404, message="No active entry like this.")
    return RedirectResponse("/console/lists", 303)
