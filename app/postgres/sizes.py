"""On-disk size of the durable record: bytes per stored transaction and per label.

``pg_total_relation_size`` of a table counts its heap, TOAST, free-space and visibility maps
and every index; for a partitioned table it is summed over the partitions (and their
partitions). Used by ``bench/storage.py`` and by the size test.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection = asyncpg.Connection | PoolConnectionProxy

_SIZES = """
SELECT coalesce(sum(pg_table_size(t.relid)), 0)::bigint AS table_bytes,
       coalesce(sum(pg_indexes_size(t.relid)), 0)::bigint AS index_bytes,
       coalesce(sum(pg_total_relation_size(t.relid)), 0)::bigint AS total_bytes
FROM (SELECT relid FROM pg_partition_tree($1::regclass) UNION SELECT $1::regclass) t
"""


@dataclass(frozen=True)
class RelationSize:
    """A table with its partitions: heap + TOAST + maps, indexes, and the total."""

    name: str
    table_bytes: int
    index_bytes: int
    total_bytes: int


async def relation_size(conn: Connection, name: str) -> RelationSize | None:
    """Sizes of ``name`` summed over its partition tree; ``None`` if there is no such table."""
    kind = await conn.fetchval(
        "SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)", name
    )
    if kind not in ("r", "p"):  # absent, or a view (transactions, from migration 002)
        return None
    row = await conn.fetchrow(_SIZES, name)
    assert row is not None
    return RelationSize(name, row["table_bytes"], row["index_bytes"], row["total_bytes"])


#: The tables that grow with each scored transaction: migration 001's, then 002's.
TRANSACTION_RELATIONS = ("transactions", "scored_transactions", "transaction_ids")
#: The relations that grow with each label.
LABEL_RELATIONS = ("labels", "learn_log")


async def sizes(conn: Connection, names: tuple[str, ...]) -> list[RelationSize]:
    found = [await relation_size(conn, name) for name in names]
    return [size for size in found if size is not None]
