"""GET /v1/cards/{card_id}/features: what a transaction on this card would see now (debug)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from app import auth
from app.api.deps import State
from app.errors import problem, problem_responses
from features.schema import ID_PATTERN, MAX_ID_LENGTH, looks_like_pan

router = APIRouter(prefix="/v1/cards", tags=["cards"])
CardId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]


@router.get(
    "/{card_id}/features",
    summary="Current features of a card",
    dependencies=[Depends(auth.requires("admin"))],
    responses=problem_responses(401, 403, 422),
)
async def card_features(card_id: CardId, state: State) -> Any:
    """The card's rolling aggregates as of now, without recording anything."""
    if looks_like_pan(card_id):
        return problem(422, "pan_rejected", [{"loc": ["path", "card_id"], "type": "pan"}])
    return {"card_id": card_id, "features": await state.features.card_features(card_id, None)}
