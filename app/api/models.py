"""GET /v1/models, POST /v1/models/{name}/promote, GET /v1/models/promotions."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.api import auth
from app.api.deps import State
from app.api.errors import problem, problem_responses

router = APIRouter(prefix="/v1/models", tags=["models"])
ModelName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Admin = Annotated[auth.Principal, Depends(auth.requires("admin"))]
LEADER_WAIT_SECONDS = 10.0  # the leader settles a request at its next sweep (about a second)


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500, pattern=r"^[^\x00]*$")


@router.get(
    "",
    summary="Champion and challengers",
    dependencies=[Depends(auth.requires("score"))],
    responses=problem_responses(401, 403),
)
async def list_models(state: State) -> dict[str, Any]:
    """Versions, rolling quality metrics, label counts and drift state of every model."""
    return {"models": state.promotions.models(), "policy": state.promotions.policy()}


@router.get(
    "/promotions",
    summary="Promotion audit log",
    dependencies=[Depends(auth.requires("score"))],
    responses=problem_responses(401, 403),
)
async def promotions(state: State) -> dict[str, Any]:
    """Every champion change, oldest first, with both models' metrics at that moment."""
    return {"promotions": await state.records.promotions()}


@router.post(
    "/{name}/promote",
    summary="Make a challenger the champion",
    responses={
        202: {"description": "Recorded; the leading learner (another process) applies it"},
        **problem_responses(401, 403, 404, 409, 422),
    },
)
async def promote(name: ModelName, body: PromoteRequest, state: State, admin: Admin) -> Any:
    """Promote ``name``: 200 with the audit record when applied here, 202 when requested."""
    if name not in state.learner.pool.names():
        return problem(404, "no model with this name")
    if name == state.learner.pool.champion:
        return problem(409, "this model is already the champion")
    request_id = await state.promotions.request(name, body.reason, admin.name)
    if state.learner.leading:  # this process applies it: answer with the outcome
        state.learner.wake()
        try:
            async with asyncio.timeout(LEADER_WAIT_SECONDS):
                settled = await state.promotions.settled(request_id)
        except TimeoutError:
            pass
        else:
            if settled.record is None:
                return problem(409, f"promotion refused: {settled.outcome}")
            return settled.record
    accepted = {"status": "accepted", "request_id": request_id, "to_model": name}
    return JSONResponse(accepted, status_code=202)
