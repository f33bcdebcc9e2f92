"""Liveness, readiness and the Prometheus scrape endpoint."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import State

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Process is alive")
async def healthz() -> dict[str, str]:
    """The process answers; says nothing about its dependencies."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Dependencies reachable",
    responses={503: {"description": "A dependency is down; the body names it"}},
)
async def readyz(state: State) -> JSONResponse:
    """Redis, Postgres (migrations applied), Kafka and the workers are all healthy."""
    problems = await state.readiness.check()
    body: dict[str, Any] = {"status": "ok" if not problems else "unavailable"}
    if problems:
        body["down"] = problems
    return JSONResponse(body, status_code=503 if problems else 200)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of every riverguard collector."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
