"""``create_app(settings)``: the FastAPI application; nothing runs at import time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response

from app import auth, bootstrap, errors
from app.api import cards, health, labels, models, transactions
from app.config import Settings
from app.limits import BodySizeLimit
from app.metrics import Metrics


def create_app(settings: Settings, metrics: Metrics | None = None) -> FastAPI:
    """Build the application for ``settings``; resources open in the lifespan."""
    collectors = metrics or Metrics()
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
    for router in (health, transactions, labels, models, cards):
        app.include_router(router.router)
    _time_requests(app, collectors)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    return app


def _time_requests(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def timer(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        metrics.requests.labels(template, request.method, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response
