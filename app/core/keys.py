"""Core room: API keys — parsing ``RIVERGUARD_API_KEYS``, the key ring, who a key is.

Pure logic shared by the adapters that authenticate people or programs (``app.api.auth``
checks the ``X-API-Key`` header, ``app.console`` signs analysts in with a key).

``RIVERGUARD_API_KEYS`` is a comma-separated list of ``key=scope|scope`` entries, each with an
optional ``@name``: ``key=scope|scope@name``. A key may be written ``sha256:<hex>`` so that the
plain key never sits in configuration. The name goes after the scopes because a key may hold
any character but ``,`` (``sha256:`` keys hold a ``:``) while scopes never hold ``=`` or ``@``:
the entry splits at its last ``=`` and the part after it at its first ``@``. A name is
``[A-Za-z0-9_.-]{1,64}``, unique; without one, an entry is ``key-<n>`` by its position. The
name says who acted (the analyst of a review verdict, the author of a list entry); the key
itself is never logged or answered. Plain keys are hashed when parsed, and only digests are
kept in memory. A console session is bound to its key by :func:`fingerprint` (a keyed,
truncated MAC of the digest), never by the name: a key rotated under the same name, or an
unnamed key whose position changed, is another key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal

Scope = Literal["score", "label", "review", "admin", "approve"]
SCOPES: frozenset[str] = frozenset({"score", "label", "review", "admin", "approve"})
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class KeyConfigError(ValueError):
    """RIVERGUARD_API_KEYS cannot be parsed; the message names the entry (never the key)."""


@dataclass(frozen=True)
class ApiKey:
    digest: bytes
    scopes: frozenset[str]
    name: str = ""


@dataclass(frozen=True)
class Principal:
    """Who called: the key's name (never the key) and its scopes."""

    name: str
    scopes: frozenset[str]


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def parse_keys(text: str) -> list[ApiKey]:
    """Parse ``key=scope|scope[@name]`` entries.

    >>> keys = parse_keys("abc=score|label, sha256:" + "0" * 64 + "=admin|review@alice")
    >>> [(sorted(k.scopes), k.name) for k in keys]
    [(['label', 'score'], 'key-1'), (['admin', 'review'], 'alice')]
    """
    keys: list[ApiKey] = []
    for position, entry in enumerate(filter(None, (e.strip() for e in text.split(","))), 1):
        key, sep, rest = entry.rpartition("=")
        scopes_text, at, name = rest.partition("@")
        name = name.strip() if at else f"key-{position}"
        scopes = frozenset(s.strip() for s in scopes_text.split("|") if s.strip())
        if not sep or not key or not scopes or not scopes <= SCOPES:
            raise KeyConfigError(
                f"API key entry #{position} must look like"
                " key=score|label|review|admin|approve[@name]"
            )
        if not _NAME.fullmatch(name):
            raise KeyConfigError(f"API key entry #{position}: a name is [A-Za-z0-9_.-]{{1,64}}")
        if any(k.name == name for k in keys):
            raise KeyConfigError(f"API key entry #{position}: the name {name!r} is taken")
        keys.append(ApiKey(_entry_digest(key, position), scopes, name))
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


def fingerprint(secret: bytes, key_digest: bytes) -> str:
    """A key's fingerprint under ``secret``: 128 bits of HMAC-SHA256 over its digest, in hex.

    Keyed, so a stored fingerprint cannot be tested against guessed keys without the secret.

    >>> fp = fingerprint(b"s" * 32, digest("abc"))
    >>> len(fp), fp == fingerprint(b"s" * 32, digest("abd"))
    (32, False)
    >>> fp == fingerprint(b"t" * 32, digest("abc"))  # another secret
    False
    """
    return hmac.new(secret, b"riverguard.key:" + key_digest, hashlib.sha256).hexdigest()[:32]


def generate_key() -> str:
    return "rg_" + secrets.token_urlsafe(24)


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[ApiKey, ...]

    def principal_of(self, presented: str | None) -> Principal | None:
        """The presented key's principal, or None. Compares against every key (constant time)."""
        if not presented:
            return None
        wanted = digest(presented)
        found: Principal | None = None
        for key in self.keys:
            if hmac.compare_digest(key.digest, wanted):
                found = Principal(key.name, key.scopes)
        return found

    def scopes_of(self, presented: str | None) -> frozenset[str] | None:
        """Scopes of the presented key, or None."""
        principal = self.principal_of(presented)
        return None if principal is None else principal.scopes

    def by_fingerprint(self, secret: bytes, wanted: str) -> Principal | None:
        """The principal whose key has fingerprint ``wanted`` under ``secret``, or None."""
        found: Principal | None = None
        for key in self.keys:
            if hmac.compare_digest(fingerprint(secret, key.digest), wanted):
                found = Principal(key.name, key.scopes)
        return found
