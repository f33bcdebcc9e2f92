"""``create_app(settings)``: the FastAPI application; nothing runs at import time."""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import AsyncIterator

from fastapi import FastAPI

from app import bootstrap
from app.api import (
    auth,
    cards,
    cases,
    errors,
    health,
    labels,
    lists,
    models,
    proposals,
    reviews,
    rules,
    transactions,
)
from app.api.admission import AdmissionLimit
from app.api.limits import BodySizeLimit
from app.api.timing import RequestTimer
from app.config import Settings
from app.console import app as console
from app.core.metrics import Metrics


def versions() -> dict[str, str]:
    out = {}
    for name in ("riverguard", "river", "fastapi", "aiokafka", "redis", "asyncpg"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def create_app(settings: Settings, metrics: Metrics | None = None) -> FastAPI:
    """Build the application for ``settings``; resources open in the lifespan."""
    collectors = metrics or Metrics()
    collectors.build.info(versions())
    keyring = auth.KeyRing(tuple(bootstrap.api_keys(settings)))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with bootstrap.running(settings, collectors) as state:
            app.state.riverguard = state
            yield

    app = FastAPI(
        title="riverguard",
        version="0.1.0",
        summary="Online-learning fraud scoring: champion decides, challengers learn in shadow.",
        lifespan=lifespan,
    )
    app.state.keyring = keyring
    app.state.metrics = collectors
    errors.install(app)
    routers = (health, transactions, labels, models, cards, lists, reviews, rules, cases, proposals)
    for router in routers:
        app.include_router(router.router)
    console.install(app, settings)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    # inside the timer (a shed request is timed with its 503), outside everything else
    app.add_middleware(AdmissionLimit, limit=settings.max_inflight_requests, metrics=collectors)
    app.add_middleware(RequestTimer, metrics=collectors)
    return app
