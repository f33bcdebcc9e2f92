"""Core room: console sessions as server-side records — the port and the record.

A session is a random id the browser holds (in a signed cookie) and a row the service holds:
the SHA-256 of the id (a read of the table yields no usable session), the fingerprint of the
key that signed in (:func:`app.core.keys.fingerprint`), the session's CSRF token and its
expiry. Every console request reads the row by its primary key: signing out deletes it, so
the session ends in every process at once, and the key ring is asked for the fingerprint's
key, so a key rotated or removed from ``RIVERGUARD_API_KEYS`` refuses its sessions as soon as
a process runs with the new keys. The durable copy is Postgres (``app.postgres.sessions``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

#: Keys that may open the console: analysts (review), admins and approvers (four-eyes).
CONSOLE_SCOPES: frozenset[str] = frozenset({"review", "admin", "approve"})


def id_hash(session_id: str) -> bytes:
    """What the store keeps of a session id (the id itself is a bearer secret)."""
    return hashlib.sha256(session_id.encode("utf-8")).digest()


@dataclass(frozen=True)
class SessionRecord:
    id_hash: bytes
    fingerprint: str
    csrf: str
    expires_at: datetime


class SessionStore(Protocol):
    """Where console sessions live between requests, shared by every process."""

    async def open(self, record: SessionRecord, now: datetime) -> None:
        """Store ``record`` (and forget sessions expired before ``now``)."""
        ...

    async def find(self, hashed: bytes, now: datetime) -> SessionRecord | None:
        """The live session with this id hash; None when ended, expired or unknown."""
        ...

    async def end(self, hashed: bytes) -> None:
        """End the session (sign-out): every process refuses it from now on."""
        ...
