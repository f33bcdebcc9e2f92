"""Core room: allow / block / watch lists — entries, the in-memory index, the store port.

A list entry names a value of one entity of a transaction (its card, merchant, device or
country) and what to do when it appears: ``allow`` (approve), ``block`` (decline) or ``watch``
(only a reason and a rule variable). Checking a transaction is the hot path, so it never waits
on a server: each process holds an immutable :class:`ListIndex` (dictionary lookups, expired
entries ignored at lookup time) and :class:`ListBook` swaps in a new one when the store's
change counter moved. The durable copy is Postgres (``app.postgres.lists``); Redis is not
involved. Values are validated like the transaction's fields (``features.schema``): a PAN in
a card-like value is refused as ``pan_rejected`` and never echoed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, get_args

from pydantic import TypeAdapter, ValidationError

from features.schema import Country, Identifier, Transaction, pan_forbidden

log = logging.getLogger(__name__)

Entity = Literal["card", "merchant", "device", "country"]
Kind = Literal["allow", "block", "watch"]
ENTITIES: tuple[Entity, ...] = get_args(Entity)
KINDS: tuple[Kind, ...] = get_args(Kind)
#: The transaction field each entity's value is read from (and validated like).
FIELDS: dict[Entity, str] = {
    "card": "card_id",
    "merchant": "merchant_id",
    "device": "device_id",
    "country": "country",
}
_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)
_COUNTRY: TypeAdapter[str] = TypeAdapter(Country)


def value_problem(entity: Entity, value: str) -> str | None:
    """Why ``value`` cannot be a value of ``entity`` (an error type), or None when it can.

    >>> value_problem("card", "4111111111111111"), value_problem("merchant", "4111111111111111")
    ('pan', None)
    >>> value_problem("country", "FR"), value_problem("country", "XX")
    (None, 'country')
    """
    adapter = _COUNTRY if entity == "country" else _IDENTIFIER
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        kind = str(error["type"])
        # our validators raise ValueError(<short kind>), as in features.schema: keep that word
        return str(error["msg"]).removeprefix("Value error, ") if kind == "value_error" else kind
    if pan_forbidden(FIELDS[entity], value):
        return "pan"
    return None


@dataclass(frozen=True)
class ListEntry:
    """One entry; ``removed_at`` set means it was removed (kept as history)."""

    entity: Entity
    value: str
    kind: Kind
    reason: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    removed_at: datetime | None = None
    removed_by: str | None = None
    id: int = 0

    def active(self, now: datetime) -> bool:
        return self.removed_at is None and (self.expires_at is None or self.expires_at > now)


Hits = dict[Entity, tuple[Kind, ...]]


class ListIndex:
    """The entries of every list by (entity, value); built once, never changed."""

    __slots__ = ("_by_value", "version")

    def __init__(self, entries: Iterable[ListEntry] = (), version: int = 0) -> None:
        by_value: dict[tuple[str, str], list[ListEntry]] = {}
        for entry in entries:
            if entry.removed_at is None:
                by_value.setdefault((entry.entity, entry.value), []).append(entry)
        self._by_value = {key: tuple(found) for key, found in by_value.items()}
        self.version = version

    def hits(self, tx: Transaction, now: datetime) -> Hits:
        """The kinds each entity of ``tx`` is listed as (only entities with a live entry)."""
        found: Hits = {}
        for entity, name in FIELDS.items():
            value = getattr(tx, name)
            if value is None:
                continue
            entries = self._by_value.get((entity, value))
            if entries:
                kinds = tuple(e.kind for e in entries if e.active(now))
                if kinds:
                    found[entity] = kinds
        return found

    def entry(self, entry_id: int) -> ListEntry | None:
        """The entry not removed with id ``entry_id``, or None (a scan: for a click, not a tx)."""
        for found in self._by_value.values():
            for entry in found:
                if entry.id == entry_id:
                    return entry
        return None

    def counts(self, now: datetime) -> dict[Kind, int]:
        """Live entries per kind (every kind, zeros included)."""
        live = Counter(e.kind for found in self._by_value.values() for e in found if e.active(now))
        return {kind: live[kind] for kind in KINDS}

    def __len__(self) -> int:
        return sum(len(found) for found in self._by_value.values())


@dataclass(frozen=True)
class ListQuery:
    """A page of ``GET /v1/lists``: entries after ``after`` (an id) in id order."""

    entity: Entity | None = None
    kind: Kind | None = None
    prefix: str | None = None
    include_expired: bool = False
    include_removed: bool = False
    limit: int = 100
    after: int = 0


class DuplicateEntry(LookupError):
    """An active entry with the same entity, value and kind exists."""


class ListStore(Protocol):
    """The durable lists: one active entry per (entity, value, kind); removals kept."""

    async def version(self) -> int:
        """A counter that moves with every change (cheap: polled every refresh)."""
        ...

    async def snapshot(self) -> tuple[list[ListEntry], int]:
        """Every entry not removed, and the version they are of (one consistent read)."""
        ...

    async def add(self, entry: ListEntry) -> ListEntry:
        """Store ``entry`` (an expired active twin is removed first); DuplicateEntry if live."""
        ...

    async def remove(
        self, entity: Entity, kind: Kind, value: str, by: str, at: datetime
    ) -> ListEntry | None:
        """Mark the active entry removed; None when there is none."""
        ...

    async def add_many(self, entries: Sequence[ListEntry]) -> int:
        """Store every entry in one transaction (one version bump), or none of them:
        :class:`DuplicateEntry` names the position of the first entry with a live twin."""
        ...

    async def search(self, query: ListQuery, now: datetime) -> list[ListEntry]: ...


@dataclass
class ListBook:
    """The process's current :class:`ListIndex` (a plain attribute: read it, never await it)."""

    store: ListStore
    index: ListIndex = field(default_factory=ListIndex)
    on_change: Callable[[ListIndex], None] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def refresh(self) -> bool:
        """Reload when the store's version moved; True when a new index was swapped in."""
        async with self._lock:  # one reload at a time: a slower, older one cannot win
            version = await self.store.version()
            if version == self.index.version:
                return False
            entries, version = await self.store.snapshot()
            self.index = ListIndex(entries, version)
        if self.on_change is not None:
            self.on_change(self.index)
        return True

    async def add(self, entry: ListEntry) -> ListEntry:
        stored = await self.store.add(entry)
        await self.refresh()  # local writes count at once, here
        return stored

    async def add_many(self, entries: Sequence[ListEntry]) -> int:
        added = await self.store.add_many(entries)
        await self.refresh()
        return added

    async def remove(
        self, entity: Entity, kind: Kind, value: str, by: str, at: datetime
    ) -> ListEntry | None:
        removed = await self.store.remove(entity, kind, value, by, at)
        if removed is not None:
            await self.refresh()
        return removed

    async def search(self, query: ListQuery, now: datetime) -> Sequence[ListEntry]:
        return await self.store.search(query, now)

    async def run(self, every: float) -> None:
        """Refresh every ``every`` seconds, forever (a failed refresh keeps the last index)."""
        while True:
            try:
                await self.refresh()
            except Exception:
                log.warning("list refresh failed; keeping the last index", exc_info=True)
            await asyncio.sleep(every)
