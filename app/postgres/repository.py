"""Postgres, the durable record: one method per statement (asyncpg, no ORM).

:class:`PgRepository` implements every store port of :mod:`app.core.ports`, one concern per
module of this package: the layout (:mod:`~app.postgres.layout`: feature sets, lineups,
partitions), scored transactions (:mod:`~app.postgres.scored`), labels and the learning log
(:mod:`~app.postgres.labels`), snapshots and promotions (:mod:`~app.postgres.snapshots`),
retention (:mod:`~app.postgres.retention`). They share one pool and the layout's caches.
"""

from __future__ import annotations

from app.postgres.labels import PgLabels
from app.postgres.retention import PgRetention
from app.postgres.snapshots import PgSnapshots


class PgRepository(PgLabels, PgRetention, PgSnapshots):
    """Every store port over one pool (see the module docstring for which concern is where)."""
