"""API room: allow / block / watch lists (scope ``admin``): GET, POST and DELETE /v1/lists,
and lists in bulk: POST /v1/lists/import and GET /v1/lists/export (CSV, app.core.list_csv).

Values are checked like the transaction's fields (``app.core.lists.value_problem``); a card
number is ``pan_rejected`` and never echoed. An answer holds the entry and nothing more.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.responses import PlainTextResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.api import auth, proposals
from app.api.deps import State, now
from app.api.errors import problem, problem_responses
from app.core import list_csv
from app.core.lists import (
    FIELDS,
    DuplicateEntry,
    Entity,
    Kind,
    ListEntry,
    ListQuery,
    value_problem,
)
from features import schema
from features.schema import ID_PATTERN, MAX_ID_LENGTH, looks_like_pan, pan_forbidden

router = APIRouter(prefix="/v1/lists", tags=["lists"])
Admin = Annotated[auth.Principal, Depends(auth.requires("admin"))]
Value = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)]


FreeText = schema.FreeText


class NewEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: Entity
    value: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    kind: Kind
    reason: FreeText = Field(min_length=1, max_length=500)
    expires_at: AwareDatetime | None = None


class EntryOut(BaseModel):
    id: int
    entity: Entity
    value: str
    kind: Kind
    reason: str
    expires_at: datetime | None
    created_at: datetime
    created_by: str
    removed_at: datetime | None
    removed_by: str | None


class Imported(BaseModel):
    imported: int = Field(description="entries added (all of the file)")


class EntryPage(BaseModel):
    entries: list[EntryOut]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null: done")


def _out(entry: ListEntry) -> EntryOut:
    return EntryOut(
        id=entry.id,
        entity=entry.entity,
        value=entry.value,
        kind=entry.kind,
        reason=entry.reason,
        expires_at=entry.expires_at,
        created_at=entry.created_at,
        created_by=entry.created_by,
        removed_at=entry.removed_at,
        removed_by=entry.removed_by,
    )


def _refused(location: list[str], kind: str) -> Any:
    reason = "pan_rejected" if kind == "pan" else "validation_failed"
    return problem(422, reason, [{"loc": location, "type": kind}])


@router.get(
    "",
    response_model=EntryPage,
    summary="List entries",
    responses=problem_responses(401, 403, 422),
)
async def list_entries(
    state: State,
    _: Admin,
    entity: Entity | None = None,
    kind: Kind | None = None,
    prefix: Annotated[
        str | None, Query(max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, description="of value")
    ] = None,
    include_expired: bool = False,
    include_removed: Annotated[bool, Query(description="removed entries too (history)")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
) -> Any:
    """Entries in creation order, filtered; ``next_cursor`` pages on."""
    if prefix is not None:
        pan = pan_forbidden(FIELDS[entity], prefix) if entity else looks_like_pan(prefix)
        if pan:
            return _refused(["query", "prefix"], "pan")
    query = ListQuery(
        entity=entity,
        kind=kind,
        prefix=prefix,
        include_expired=include_expired,
        include_removed=include_removed,
        limit=limit,
        after=int(cursor) if cursor else 0,
    )
    found = await state.lists.search(query, now())
    more = len(found) == limit
    return EntryPage(
        entries=[_out(e) for e in found], next_cursor=str(found[-1].id) if more else None
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EntryOut,
    summary="Add an entry",
    responses={**problem_responses(401, 403, 409, 413, 422), **proposals.ACCEPTED},
)
async def add_entry(body: NewEntry, state: State, principal: Admin) -> Any:
    """Effective at once in this process, within ``decisions.refresh_seconds`` in the others."""
    problem_type = value_problem(body.entity, body.value)
    if problem_type is not None:
        return _refused(["body", "value"], problem_type)
    if looks_like_pan(body.reason):
        return _refused(["body", "reason"], "pan")
    at = now()
    if body.expires_at is not None and body.expires_at <= at:
        return _refused(["body", "expires_at"], "past")
    entry = ListEntry(
        entity=body.entity,
        value=body.value,
        kind=body.kind,
        reason=body.reason,
        created_at=at,
        created_by=principal.name,
        expires_at=body.expires_at,
    )
    if state.settings.decisions.four_eyes:
        payload = body.model_dump(mode="json")
        target = f"{body.entity}/{body.kind}/{body.value}"
        return await proposals.propose(state, "list_add", target, payload, principal.name)
    try:
        stored = await state.lists.add(entry)
    except DuplicateEntry:
        return problem(409, "an active entry with this entity, value and kind exists")
    return _out(stored)


@router.post(
    "/import",
    response_model=Imported,
    summary="Import entries from CSV (all or nothing)",
    responses=problem_responses(400, 401, 403, 409, 413, 422),
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def import_entries(request: Request, state: State, principal: Admin) -> Any:
    """Header entity,value,kind,reason[,expires_at]; one bad row refuses the file (422)."""
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        return problem(400, "the body is not UTF-8 text")
    try:
        entries = list_csv.parse(text, principal.name, now())
    except list_csv.CsvRefused as exc:
        pan = any(e["type"] == "pan" for e in exc.errors)
        return problem(422, "pan_rejected" if pan else "validation_failed", exc.errors)
    try:
        count = await state.lists.add_many(entries)
    except DuplicateEntry as exc:  # its position among the entries; row = position + 2
        row = int(str(exc.args[0])) + 2 if str(exc.args[0]).isdigit() else 0
        error = {"loc": ["body", str(row), "value"], "type": "exists"}
        return problem(409, "an active entry with this entity, value and kind exists", [error])
    return Imported(imported=count)


@router.get(
    "/export",
    summary="Export the active entries as CSV",
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **problem_responses(401, 403, 422),
    },
    response_class=PlainTextResponse,
)
async def export_entries(
    state: State, _: Admin, entity: Entity | None = None, kind: Kind | None = None
) -> Any:
    """Active entries (not removed, not expired) in creation order; imports back as is."""
    entries: list[ListEntry] = []
    after, at = 0, now()
    while True:
        query = ListQuery(entity=entity, kind=kind, limit=1000, after=after)
        page = await state.lists.search(query, at)
        entries += page
        if len(page) < 1000:
            break
        after = page[-1].id
    return PlainTextResponse(list_csv.to_csv(entries), media_type="text/csv")


@router.delete(
    "/{entity}/{kind}/{value}",
    response_model=EntryOut,
    summary="Remove an entry",
    responses={**problem_responses(401, 403, 404, 422), **proposals.ACCEPTED},
)
async def remove_entry(
    entity: Entity, kind: Kind, value: Value, state: State, principal: Admin
) -> Any:
    """Marks the active entry removed (by this key's name); it stays as history."""
    problem_type = value_problem(entity, value)
    if problem_type is not None:
        return _refused(["path", "value"], problem_type)
    if state.settings.decisions.four_eyes:
        payload = {"entity": entity, "kind": kind, "value": value}
        target = f"{entity}/{kind}/{value}"
        return await proposals.propose(state, "list_remove", target, payload, principal.name)
    removed = await state.lists.remove(entity, kind, value, principal.name, now())
    if removed is None:
        return problem(404, "no active entry with this entity, kind and value")
    return _out(removed)
