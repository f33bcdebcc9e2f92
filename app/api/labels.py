"""POST /v1/labels: a fraud outcome for a transaction, learned once."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, TypeAdapter

from app.api import auth
from app.api.deps import RawBody, State, now
from app.api.errors import problem_responses
from features.schema import MAX_LABEL_BATCH, Label, decode_label, decode_labels

router = APIRouter(prefix="/v1/labels", tags=["labels"])


class LabelAccepted(BaseModel):
    transaction_id: str
    status: Literal["learned", "duplicate", "parked", "relabeled", "accepted"]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=LabelAccepted,
    summary="Record a label",
    dependencies=[Depends(auth.requires("label"))],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": Label.model_json_schema()}},
        }
    },
    responses=problem_responses(400, 401, 403, 413, 422),
)
async def post_label(body: RawBody, state: State) -> LabelAccepted:
    """Learned, parked, duplicate, relabeled, or accepted (another process's learner settles it)."""
    label = decode_label(body, now=now(), max_future_skew=state.settings.scoring.max_future_skew)
    (result,) = await state.learner.submit([label])
    state.metrics.inputs.labels("label", "rest", result).inc()
    return LabelAccepted(transaction_id=label.transaction_id, status=result)


class LabelsAccepted(BaseModel):
    labels: list[LabelAccepted]


@router.post(
    "/batch",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=LabelsAccepted,
    summary="Record labels in order",
    dependencies=[Depends(auth.requires("label"))],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        **TypeAdapter(list[Label]).json_schema(),
                        "minItems": 1,
                        "maxItems": MAX_LABEL_BATCH,
                    }
                }
            },
        }
    },
    responses=problem_responses(400, 401, 403, 413, 422),
)
async def post_labels(body: RawBody, state: State) -> LabelsAccepted:
    """Up to 400 labels, recorded in their order; all or none (a bad one refuses the batch)."""
    labels = decode_labels(body, now=now(), max_future_skew=state.settings.scoring.max_future_skew)
    results = await state.learner.submit(labels)
    for result in results:
        state.metrics.inputs.labels("label", "rest", result).inc()
    return LabelsAccepted(
        labels=[
            LabelAccepted(transaction_id=label.transaction_id, status=result)
            for label, result in zip(labels, results, strict=True)
        ]
    )
