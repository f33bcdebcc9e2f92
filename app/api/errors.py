"""RFC 9457 problem details. Errors carry a location, a type and a message, never the input.

One location convention on every route, FastAPI's own: ``["body", field, ...]`` for a field of
the JSON body (``["body"]`` for the body as a whole), ``["query", name]``, ``["path", name]``.
``msg`` is a sentence for people (:mod:`features.messages`); ``type`` is stable, for programs.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis import exceptions as redis_exceptions
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from features import messages
from features.schema import Problem

log = logging.getLogger(__name__)
# Infrastructure failures: the request may be retried; the answer is 503, never a 500.
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    redis_exceptions.RedisError,
    ConnectionError,
    TimeoutError,
    OSError,
)

PROBLEM_JSON = "application/problem+json"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    503: "Service Unavailable",
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "type": {"type": "string"},
                    "msg": {"type": "string"},
                },
            },
        },
    },
    "required": ["type", "title", "status"],
}


def problem(
    status: int,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """A problem answer; ``extra``: extension members (RFC 9457 §3.2), never input values."""
    body: dict[str, Any] = {
        **(extra or {}),
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = messages.with_messages(errors)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def send_problem(send: Send, status: int, detail: str, *headers: tuple[bytes, bytes]) -> None:
    """A problem answer sent straight through ASGI, by a middleware that answers before any
    route (no errors, no extension members); ``headers`` follow the type and the length."""
    body = json.dumps(
        {
            "type": "about:blank",
            "title": TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
        }
    ).encode()
    start = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": [*start, *headers]})
    await send({"type": "http.response.body", "body": body})


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given problem statuses."""
    return {
        code: {
            "description": TITLES.get(code, "Error"),
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
        }
        for code in codes
    }


def _safe_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        kind = str(err.get("type", "invalid"))
        if kind == "value_error":  # our validators raise ValueError(<short kind>)
            kind = str(err.get("msg", "")).removeprefix("Value error, ")
        loc = [str(part) for part in err.get("loc", ())]
        out.append({"loc": loc, "type": kind, "msg": messages.message(kind, err.get("msg"))})
    return out


def in_body(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Errors of a body our code decoded (transactions, labels), located as FastAPI does."""
    return [{**error, "loc": ["body", *error.get("loc", [])]} for error in errors]


def _count_rejection(request: Request, reason: str) -> None:
    kind = "label" if request.url.path.startswith("/v1/labels") else "transaction"
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.inputs.labels(kind, "rest", "rejected").inc()
        metrics.rejections.labels(kind, reason).inc()


def install(app: FastAPI) -> None:
    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem(422, "request validation failed", _safe_errors(exc))

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        status = 400 if exc.reason in {"invalid_json", "not_an_object"} else 422
        _count_rejection(request, exc.reason)
        return problem(status, exc.reason, in_body(exc.errors))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers) if exc.headers else None
        return problem(exc.status_code, str(exc.detail), headers=headers)

    async def on_dependency(request: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency failure on %s: %s", request.url.path, type(exc).__name__)
        return problem(503, "a dependency is unavailable; retry", headers={"Retry-After": "1"})

    for kind in DEPENDENCY_ERRORS:
        app.add_exception_handler(kind, on_dependency)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
