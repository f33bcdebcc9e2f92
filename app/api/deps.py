"""Shared route dependencies: the typed app state and the raw request body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from app.state import AppState, get_state

State = Annotated[AppState, Depends(get_state)]


def now() -> datetime:
    return datetime.now(UTC)


async def raw_body(request: Request) -> bytes:
    """The body bytes (size already bounded by the BodySizeLimit middleware)."""
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]
