"""``create_app(settings)``: the FastAPI application; nothing runs at import time."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from app import probes
from app.api import health
from app.config import Settings
from app.health import Readiness
from app.resources import open_backends
from app.state import AppState


def create_app(settings: Settings) -> FastAPI:
    """Build the application for ``settings``; resources open in the lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_backends(settings) as backends:
            readiness = Readiness(stall_seconds=settings.stream.stall_seconds)
            probes.install(readiness, backends)
            app.state.riverguard = AppState(settings, backends, readiness)
            yield

    app = FastAPI(
        title="riverguard",
        version="0.1.0",
        summary="Online-learning fraud scoring",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    return app
