"""API keys: ``X-API-Key`` checked in constant time against SHA-256 digests, with scopes.

``RIVERGUARD_API_KEYS`` is ``key=scope|scope,...``; a key may be written ``sha256:<hex>`` so
that the plain key never sits in configuration. Plain keys are hashed when parsed, and only
digests are kept in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import HTTPException, Request, status

Scope = Literal["score", "label", "admin"]
SCOPES: frozenset[str] = frozenset({"score", "label", "admin"})
HEADER = "X-API-Key"


class KeyConfigError(ValueError):
    """RIVERGUARD_API_KEYS cannot be parsed; the message names the entry (never the key)."""


@dataclass(frozen=True)
class ApiKey:
    digest: bytes
    scopes: frozenset[str]


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def parse_keys(text: str) -> list[ApiKey]:
    """Parse ``key=scope|scope`` entries.

    >>> [sorted(k.scopes) for k in parse_keys("abc=score|label, sha256:" + "0" * 64 + "=admin")]
    [['label', 'score'], ['admin']]
    """
    keys = []
    for position, entry in enumerate(filter(None, (e.strip() for e in text.split(","))), 1):
        key, sep, scopes_text = entry.rpartition("=")
        scopes = frozenset(s.strip() for s in scopes_text.split("|") if s.strip())
        if not sep or not key or not scopes or not scopes <= SCOPES:
            raise KeyConfigError(f"API key entry #{position} must look like key=score|label|admin")
        keys.append(ApiKey(_entry_digest(key, position), scopes))
    return keys


def _entry_digest(key: str, position: int) -> bytes:
    if key.startswith("sha256:"):
        try:
            raw = bytes.fromhex(key.removeprefix("sha256:"))
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise KeyConfigError(f"API key entry #{position}: sha256: needs 64 hex digits")
        return raw
    return digest(key)


def generate_key() -> str:
    return "rg_" + secrets.token_urlsafe(24)


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[ApiKey, ...]

    def scopes_of(self, presented: str | None) -> frozenset[str] | None:
        """Scopes of the presented key, or None. Compares against every key (constant time)."""
        if not presented:
            return None
        wanted = digest(presented)
        found: frozenset[str] | None = None
        for key in self.keys:
            if hmac.compare_digest(key.digest, wanted):
                found = key.scopes
        return found


def requires(scope: Scope) -> Callable[[Request], Coroutine[Any, Any, None]]:
    """A FastAPI dependency: 401 without a known key, 403 without ``scope``."""

    async def check(request: Request) -> None:
        ring: KeyRing = request.app.state.keyring
        scopes = ring.scopes_of(request.headers.get(HEADER))
        if scopes is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or unknown API key",
                headers={"WWW-Authenticate": HEADER},
            )
        if scope not in scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this key lacks the {scope!r} scope")

    return check
