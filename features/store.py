"""The Redis feature store (Lua scripts under ``features/lua/``); the port the service needs
of it is ``FeatureStore`` in ``app/core/ports.py``.

A batch is scored in two pipelined round trips: first every card step (dedup marker,
lateness check, point-in-time read, insert, trim: one atomic script per card), then the
merchant step of every transaction its card accepted. So one decision — the card's — says
whether a transaction is counted anywhere, and a merchant never counts a transaction that
was rejected as late (features/README.md, "Late events").

>>> import asyncio
>>> from features import reference
>>> from features.schema import Transaction
>>> store = reference.MemoryFeatureStore()  # the same protocol without Redis
>>> tx = Transaction(transaction_id="t1", card_id="c1", merchant_id="m1", amount=10,
...                  currency="EUR", timestamp="2026-01-05T10:00:00Z")
>>> [r.status for r in asyncio.run(store.score_batch([tx, tx]))]
['fresh', 'duplicate']
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from features import definitions, redis_io, windows
from features.config import CONFLICT, FeatureConfig, FeatureResult, Status, late_reason
from features.redis_io import CARD_ARGS, LABEL, MERCHANT_ARGS, PEEK, SCORE
from features.schema import Label, Transaction

__all__ = [
    "FeatureConfig",
    "FeatureResult",
    "RedisFeatureStore",
    "connect",
    "connect_cluster",
]

connect = redis_io.connect
connect_cluster = redis_io.connect_cluster
#: A label's arrival ms, appended to the merchant script's label-mode arguments.
_ARRIVAL = struct.Struct("<d")
#: Called after each operation with (operation name, number of items, seconds taken).
Observer = Callable[[str, int, float], None]


class RedisFeatureStore:
    """Point-in-time, idempotent per-card and per-merchant features on Redis or Valkey,
    standalone or Cluster.

    Parameters
    ----------
    client
        A ``redis.asyncio.Redis``, ideally from :func:`connect` (blocking pool), or a
        ``redis.asyncio.RedisCluster`` from :func:`connect_cluster` (every key of an entity
        carries its hash tag; no script touches two entities).
    config
        Lateness bound, caps, dedup TTL and key prefix.
    observer
        Optional callback ``(operation, items, seconds)`` for metrics.

    >>> store = RedisFeatureStore(connect("redis://127.0.0.1:1/0"), FeatureConfig())
    >>> store.config.key_prefix  # nothing is opened until the first command
    'rg'
    """

    def __init__(
        self,
        client: redis_io.Client,
        config: FeatureConfig | None = None,
        *,
        observer: Observer | None = None,
    ) -> None:
        self.client = client
        self.config = config or FeatureConfig()
        self.observer = observer
        self.keys = redis_io.Keys(self.config.key_prefix)
        self.scripts = redis_io.Scripts(client)
        c = self.config
        self._card_limits = (c.lateness_ms, c.card_retention_ms, c.card_max_entries)
        self._merchant_keep = (c.merchant_keep_hours, c.merchant_keep_days)
        self._life = b"%d" % c.entity_ttl_ms  # every update renews the entity's lifetime

    async def load_scripts(self) -> None:
        await self.scripts.load()

    async def score_batch(
        self, txs: Sequence[Transaction], *, markers: bool = True
    ) -> list[FeatureResult]:
        """Features of each transaction, in order; the state is updated once per id.

        ``markers=False`` (rebuild of old history only) writes no dedup markers.
        """
        started = time.perf_counter()
        encoded = [windows.encode(tx) for tx in txs]
        ttl = self.config.dedup_ttl_seconds if markers else 0
        card = self.scripts.evalsha_format("card", 3, 2)
        merchant = self.scripts.evalsha_format("merchant", 3, 3)
        cards = await self.scripts.run(
            [self._card_call(card, tx, e, ttl) for tx, e in zip(txs, encoded, strict=True)]
        )
        accepted = [i for i, reply in enumerate(cards) if reply[:1] != b"L"]
        merchants = await self.scripts.run(
            [self._merchant_call(merchant, txs[i], encoded[i], ttl) for i in accepted]
        )
        by_index = dict(zip(accepted, merchants, strict=True))
        results = [
            self._result(tx, e, cards[i], by_index.get(i))
            for i, (tx, e) in enumerate(zip(txs, encoded, strict=True))
        ]
        self._observe("score_batch", len(txs), started)
        return results

    async def apply_labels(self, items: Sequence[tuple[Label, Transaction]]) -> None:
        """Record fraud outcomes: idempotent per (entity, transaction id); a flip moves counts."""
        started = time.perf_counter()
        merchant_calls: list[redis_io.Call] = []
        async with self.client.pipeline(transaction=False) as pipe:
            for label, tx in items:
                ts = windows.event_ms(tx.timestamp)
                card_fraud = self.keys.card(tx.card_id)[1]
                if label.is_fraud:  # the first event time recorded for an id stays
                    pipe.hsetnx(card_fraud, tx.transaction_id, str(ts))
                    if self.config.entity_ttl_ms:
                        pipe.pexpire(card_fraud, self.config.entity_ttl_ms)
                else:
                    pipe.hdel(card_fraud, tx.transaction_id)
                merchant_calls.append(self._label_call(tx, ts, label))
            await pipe.execute()
        await self.scripts.run(merchant_calls)
        self._observe("apply_labels", len(items), started)

    async def card_features(self, card_id: str, at: datetime | None = None) -> dict[str, float]:
        """The history features a transaction of this card at ``at`` (default: now) would
        get; changes nothing. Amount-, merchant- and place-relative features are left out."""
        moment = windows.event_ms(at or datetime.now(UTC))
        state, fraud = self.keys.card(card_id)
        blob = CARD_ARGS.pack(PEEK, moment, 0, 0, 0, 0, 0, 0, 0, 1, 0) + bytes(8)
        (reply,) = await self.scripts.run([("card", (state, fraud, state), (blob,))])
        agg = windows.CardAggregates._make(redis_io.CARD_VECTOR.unpack_from(reply, 1))
        return definitions.card_history_features(agg)

    def _card_call(self, command: bytes, tx: Transaction, e: windows.EncodedTx, ttl: int) -> bytes:
        """The card step of one transaction as RESP (``command``: the card script's format)."""
        located = e.lat_u is not None and e.lon_u is not None
        blob = CARD_ARGS.pack(
            SCORE, e.ts, e.cents, e.merchant, located, e.lat_u or 0, e.lon_u or 0,
            *self._card_limits, ttl,
        )  # fmt: skip
        state, fraud = self.keys.card(tx.card_id)
        marker = self.keys.card_marker(tx.card_id, tx.transaction_id)
        return _resp(command, state, fraud, marker, blob + e.digest, self._life)

    def _merchant_call(
        self, command: bytes, tx: Transaction, e: windows.EncodedTx, ttl: int
    ) -> bytes:
        """The merchant step of one transaction as RESP, like :meth:`_card_call`."""
        blob = MERCHANT_ARGS.pack(SCORE, e.ts, e.cents, *self._merchant_keep, ttl, 0)
        state, fraud = self.keys.merchant(tx.merchant_id)
        marker = self.keys.merchant_marker(tx.merchant_id, tx.transaction_id)
        return _resp(command, state, fraud, marker, blob + e.digest, b"", self._life)

    def _label_call(self, tx: Transaction, ts: int, label: Label) -> redis_io.Call:
        """The merchant's label step: fraud counted at ``ts`` and at the label's arrival."""
        blob = MERCHANT_ARGS.pack(LABEL, ts, 0, *self._merchant_keep, 0, label.is_fraud)
        arrival = _ARRIVAL.pack(windows.label_arrival_ms(label.labeled_at, ts))
        state, fraud = self.keys.merchant(tx.merchant_id)
        args = (blob + arrival, tx.transaction_id, self._life)
        return "merchant", (state, fraud, state), args

    def _result(
        self, tx: Transaction, e: windows.EncodedTx, card: bytes, merchant: bytes | None
    ) -> FeatureResult:
        if merchant is None:  # the card rejected it: too late
            (newest,) = redis_io.NEWEST.unpack_from(card, 1)
            late = late_reason(e.ts, int(newest), self.config.lateness_ms)
            return FeatureResult(tx.transaction_id, "late", {}, late)
        card_vec, card_clash = _vector(card, redis_io.CARD_VECTOR, e.digest)
        merchant_vec, merchant_clash = _vector(merchant, redis_io.MERCHANT_VECTOR, e.digest)
        features = definitions.assemble(
            tx,
            windows.CardAggregates._make(card_vec),
            windows.MerchantAggregates._make(merchant_vec),
        )
        reason = CONFLICT if card_clash or merchant_clash else None
        status: Status = "duplicate" if card[:1] == b"D" else "fresh"
        return FeatureResult(tx.transaction_id, status, features, reason)

    def _observe(self, operation: str, items: int, started: float) -> None:
        if self.observer is not None:
            self.observer(operation, items, time.perf_counter() - started)


def _resp(command: bytes, state: str, fraud: str, marker: str, blob: bytes, *more: bytes) -> bytes:
    """A score-mode script call (three keys, ``blob`` and ``more`` arguments) from its
    EVALSHA format."""
    s, f, m = state.encode(), fraud.encode(), marker.encode()
    rest = tuple(x for arg in more for x in (len(arg), arg))
    return command % (len(s), s, len(f), f, len(m), m, len(blob), blob, *rest)


def _vector(reply: Any, layout: struct.Struct, digest: bytes) -> tuple[tuple[Any, ...], bool]:
    """The aggregate vector of a script answer, and whether a stored marker's digest differs."""
    if reply[:1] != b"D":
        return layout.unpack_from(reply, 1), False
    stored = reply[1 : 1 + redis_io.DIGEST_SIZE]
    return layout.unpack_from(reply, 1 + redis_io.DIGEST_SIZE), stored != digest
