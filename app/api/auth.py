"""API room: ``X-API-Key`` checked in constant time against SHA-256 digests, with scopes and a
name per key.

The key ring itself (parsing ``RIVERGUARD_API_KEYS``, digests, names) is pure and lives in
:mod:`app.core.keys`, shared with the console; it is re-exported here unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, status

from app.core.keys import (
    SCOPES,
    ApiKey,
    KeyConfigError,
    KeyRing,
    Principal,
    Scope,
    digest,
    generate_key,
    parse_keys,
)

__all__ = [
    "HEADER",
    "SCOPES",
    "ApiKey",
    "KeyConfigError",
    "KeyRing",
    "Principal",
    "Scope",
    "digest",
    "generate_key",
    "parse_keys",
    "requires",
]
HEADER = "X-API-Key"


def requires(scope: Scope) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """A FastAPI dependency: 401 without a known key, 403 without ``scope``; the principal."""

    async def check(request: Request) -> Principal:
        ring: KeyRing = request.app.state.keyring
        principal = ring.principal_of(request.headers.get(HEADER))
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or unknown API key",
                headers={"WWW-Authenticate": HEADER},
            )
        if scope not in principal.scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this key lacks the {scope!r} scope")
        return principal

    return check
