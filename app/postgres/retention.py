"""Postgres room: retention — the day partitions past the horizon dropped (``db prune``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from app.postgres import codec
from app.postgres.layout import PgLayout


class PgRetention(PgLayout):
    async def prune(self, retention_days: int, today: date) -> list[str]:
        """Drop the day partitions older than ``retention_days`` before ``today`` (UTC).

        With them go their ids, labels and learning-log rows, and the default partition's rows
        of those days. Days before the new horizon get no partition again. One transaction.
        """
        horizon = today - timedelta(days=retention_days)
        cutoff = datetime.combine(horizon, datetime.min.time(), UTC)
        # attached partitions and detached ones (archived, README "Storage"), by name
        tables = await self.pool.fetch(
            "SELECT relname FROM pg_class WHERE relkind = 'r'"
            " AND relnamespace = current_schema()::regnamespace"
            " AND relname LIKE 'scored\\_transactions\\_p%'"
        )
        days = {r["relname"]: codec.partition_day(r["relname"]) for r in tables}
        old = sorted(name for name, day in days.items() if day is not None and day < horizon)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(5392942, 1)")
            # names from the catalog, matching scored_transactions_pYYYYMMDD (see partitions)
            sources = [f'SELECT transaction_id FROM "{name}"' for name in old]  # noqa: S608
            sources.append(
                "SELECT transaction_id FROM scored_transactions_default WHERE event_time < $1"
            )
            gone = " UNION ALL ".join(sources)
            for table in ("learn_log", "labels", "review_queue", "transaction_ids"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE transaction_id IN ({gone})",  # noqa: S608
                    cutoff,
                )
            await conn.execute(
                "DELETE FROM scored_transactions_default WHERE event_time < $1", cutoff
            )
            for name in old:
                await conn.execute(f'DROP TABLE "{name}"')
            await conn.execute(
                "INSERT INTO storage_horizon (oldest_day) VALUES ($1) ON CONFLICT (only_row)"
                " DO UPDATE SET oldest_day ="
                " greatest(storage_horizon.oldest_day, excluded.oldest_day)",
                horizon,
            )
        self._days = {d for d in self._days if d >= horizon}
        return old
