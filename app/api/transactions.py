"""POST /v1/transactions (score) and GET /v1/transactions/{id} (the stored record)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from app.api import auth
from app.api.deps import RawBody, State, now
from app.api.errors import in_body, problem, problem_responses
from app.core.scoring import Conflict, Rejected, Scored
from features.schema import ID_PATTERN, MAX_ID_LENGTH, Score, Transaction, decode_transaction

router = APIRouter(prefix="/v1/transactions", tags=["transactions"])
TransactionId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": Transaction.model_json_schema()}},
    }
}


@router.post(
    "",
    response_model=Score,
    summary="Score a transaction",
    dependencies=[Depends(auth.requires("score"))],
    openapi_extra=BODY,
    responses=problem_responses(400, 401, 403, 409, 413, 422),
)
async def score_transaction(body: RawBody, state: State) -> Any:
    """Score one transaction; the same id and payload again returns the stored score."""
    tx = decode_transaction(body, now=now(), max_future_skew=state.settings.scoring.max_future_skew)
    (outcome,) = await state.service.score([tx], "rest")
    if isinstance(outcome, Scored):
        return Response(outcome.body, media_type="application/json")
    if isinstance(outcome, Conflict):
        return problem(409, "a different transaction was already stored under this id")
    assert isinstance(outcome, Rejected)
    return problem(422, outcome.reason, in_body(outcome.errors))


@router.get(
    "/{transaction_id}",
    summary="The stored record of a transaction",
    dependencies=[Depends(auth.requires("score"))],
    responses=problem_responses(401, 403, 404, 422),
)
async def get_transaction(transaction_id: TransactionId, state: State) -> dict[str, Any]:
    """Transaction, feature snapshot, every model's score, decision and label if known."""
    record = await state.records.get(transaction_id)
    if record is None:
        return problem(404, "no transaction with this id")  # type: ignore[return-value]
    return _amount_as_number(record)


def _amount_as_number(record: dict[str, Any]) -> dict[str, Any]:
    """The stored payload keeps the amount as a decimal string (its digest depends on it);
    the answer gives it as the JSON number POST accepts (at most 16 digits: a float holds it).
    """
    transaction = record.get("transaction")
    if isinstance(transaction, dict) and isinstance(transaction.get("amount"), str):
        transaction = {**transaction, "amount": float(Decimal(transaction["amount"]))}
        return {**record, "transaction": transaction}
    return record
