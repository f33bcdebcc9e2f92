"""GET /v1/cards/{card_id}/features: what a transaction on this card would see now (debug)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from app.api import auth
from app.api.deps import State
from app.api.errors import problem, problem_responses
from features.schema import ID_PATTERN, MAX_ID_LENGTH, pan_forbidden

router = APIRouter(prefix="/v1/cards", tags=["cards"])
CardId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]


@router.get(
    "/{card_id}/features",
    summary="Current features of a card",
    dependencies=[Depends(auth.requires("admin"))],
    responses=problem_responses(401, 403, 422),
)
async def card_features(
    card_id: CardId,
    state: State,
    at: Annotated[datetime | None, Query(description="RFC 3339 with offset; default now")] = None,
) -> Any:
    """The card's rolling aggregates as of ``at`` (default now), without recording anything."""
    if pan_forbidden("card_id", card_id):
        return problem(422, "pan_rejected", [{"loc": ["path", "card_id"], "type": "pan"}])
    if at is not None and at.utcoffset() is None:
        return problem(422, "validation_failed", [{"loc": ["query", "at"], "type": "naive"}])
    moment = at.astimezone(UTC) if at is not None else None
    features = await state.features.card_features(card_id, moment)
    return {"card_id": card_id, "at": moment.isoformat() if moment else None, "features": features}
