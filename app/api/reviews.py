"""API room: the review queue (scope ``review``): GET /v1/reviews, GET and POST
/v1/reviews/{transaction_id}.

An item shows what an analyst needs (never a card number: ``card_id`` is our identifier, and
a PAN-looking one is refused at scoring); a verdict is recorded under the key's name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from app.api import auth
from app.api.deps import State, now
from app.api.errors import problem, problem_responses
from app.api.lists import FreeText
from app.core.reviews import MAX_NOTE, AlreadyDecided, Order, ReviewFilter, Verdict
from features.schema import ID_PATTERN, MAX_AMOUNT, MAX_ID_LENGTH, looks_like_pan

router = APIRouter(prefix="/v1/reviews", tags=["reviews"])
Reviewer = Annotated[auth.Principal, Depends(auth.requires("review"))]
TransactionId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
Amount = Annotated[float | None, Query(ge=0, le=float(MAX_AMOUNT), allow_inf_nan=False)]
MAX_AGE_SECONDS = 10 * 365 * 86_400


class ModelScore(BaseModel):
    name: str
    version: str
    role: str
    score: float


class ReviewItem(BaseModel):
    transaction_id: str
    event_time: datetime
    card_id: str
    merchant_id: str
    amount: float | None = Field(description="a JSON number, as POST /v1/transactions takes it")
    currency: str | None
    country: str | None
    channel: str | None
    merchant_category: str | None
    device_id: str | None
    score: float
    decision: str
    reasons: list[dict[str, Any]]
    features: dict[str, float | None] = Field(description="as stored at scoring time")
    scores: list[ModelScore] = Field(description="the champion's, then the challengers'")
    opened_at: datetime
    verdict: Verdict | None
    note: str | None
    analyst: str | None
    decided_at: datetime | None


class ReviewPage(BaseModel):
    items: list[ReviewItem]


class VerdictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Verdict
    note: FreeText | None = Field(default=None, max_length=MAX_NOTE)


class VerdictRecorded(BaseModel):
    item: ReviewItem
    label: Literal["received"] | None = Field(
        description="received: a label (source review) was recorded; the learner learns it once"
    )


@router.get(
    "",
    response_model=ReviewPage,
    summary="Open review items",
    responses=problem_responses(401, 403, 422),
)
async def open_items(
    state: State,
    _: Reviewer,
    order: Annotated[Order, Query(description="score: highest first; age: oldest first")] = (
        "score"
    ),
    min_amount: Amount = None,
    max_amount: Amount = None,
    reason: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,64}$")] = None,
    older_than: Annotated[
        float | None,
        Query(ge=0, le=MAX_AGE_SECONDS, allow_inf_nan=False, description="seconds since opened"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """Open items, riskiest or oldest first; filters on amount, a reason code and age."""
    query = ReviewFilter(
        order=order,
        min_amount=min_amount,
        max_amount=max_amount,
        reason=reason,
        opened_before=None if older_than is None else now() - timedelta(seconds=older_than),
        limit=limit,
    )
    return {"items": await state.reviews.store.open_items(query)}


@router.get(
    "/{transaction_id}",
    response_model=ReviewItem,
    summary="One review item (open or closed)",
    responses=problem_responses(401, 403, 404, 422),
)
async def one_item(transaction_id: TransactionId, state: State, _: Reviewer) -> Any:
    """The item with its verdict when it has one."""
    item = await state.reviews.store.item(transaction_id)
    if item is None:
        return problem(404, "no review item for this transaction")
    return item


@router.post(
    "/{transaction_id}",
    response_model=VerdictRecorded,
    summary="Record a verdict",
    responses=problem_responses(401, 403, 404, 409, 413, 422),
)
async def record_verdict(
    transaction_id: TransactionId, body: VerdictRequest, state: State, principal: Reviewer
) -> Any:
    """Closes an open item once; fraud / legitimate also record a label (source review)."""
    if body.note is not None and looks_like_pan(body.note):
        return problem(422, "pan_rejected", [{"loc": ["body", "note"], "type": "pan"}])
    try:
        closed = await state.reviews.decide(
            transaction_id, body.verdict, body.note, principal.name, now()
        )
    except AlreadyDecided as first:
        return problem(
            409,
            "this item already has a verdict",
            extra={
                "verdict": first.verdict,
                "analyst": first.analyst,
                "decided_at": first.decided_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            },
        )
    if closed is None:
        return problem(404, "no review item for this transaction")
    return {"item": closed.item, "label": "received" if closed.label_seq is not None else None}
