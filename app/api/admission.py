"""Admission limit as pure ASGI middleware: past ``limit`` intake requests in flight, 503 now.

A process that accepts more work than it can finish does not get more done, it only makes
every request wait longer: queued requests grow the p99 (600 ms measured at 3x capacity)
until clients time out and retry into the queue. So the intake routes (``POST
/v1/transactions`` and ``POST /v1/labels``) count their requests in flight in this process;
one more than ``limit`` is answered at once with 503 and ``Retry-After`` — before its body is
read, before any work — and counted in ``riverguard_http_requests_shed_total{route}``. A
refused request did nothing, so a retry is always safe (and idempotent anyway). Every other
route (health, readiness, metrics, the console, the rest of the API) is never refused here,
so probes and scrapes answer under any load. The count is one integer on the event loop: no
lock, no task, no clock.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import send_problem
from app.core import series
from app.core.metrics import Metrics

#: The routes the limit guards: the ones whose work grows with traffic.
INTAKE = ("/v1/transactions", "/v1/labels")
RETRY_AFTER_SECONDS = 1


class AdmissionLimit:
    """At most ``limit`` intake requests in flight; the next ones get 503 + Retry-After."""

    def __init__(self, app: ASGIApp, limit: int, metrics: Metrics) -> None:
        self.app = app
        self.limit = limit
        self.inflight = 0
        self.shed = metrics.shed
        series.for_admission(metrics, INTAKE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in INTAKE:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.limit:
            self.shed.labels(scope["path"]).inc()
            detail = f"{self.limit} requests in flight here already: retry after a moment"
            await send_problem(send, 503, detail, (b"retry-after", b"%d" % RETRY_AFTER_SECONDS))
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
