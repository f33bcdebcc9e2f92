"""Postgres room: :class:`PgCaseStore`, cases (migration 016).

Alerts join cases by the trigger of migration 016. Each action here is one transaction that
locks the case row (``FOR UPDATE``): of two analysts acting at once, the second sees the
first one's claim or close. A close with an outcome of fraud or legitimate records its labels
through :func:`app.postgres.repository.insert_received` in that same transaction; it first
locks the case's open review items, so a verdict given in the queue at the same moment (it
locks its item) either commits first — its label is seen and the transaction is not labelled
again — or finds its item closed by the case (409).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.core.cases import PRIORITIES, AlreadyClosed, CaseFilter, Held, Outcome, Sla
from app.postgres import codec
from app.postgres.labels import insert_received
from features.schema import Label

_CASE = (
    "SELECT c.id, c.card_id, c.status, c.outcome, c.priority, c.opened_at, c.updated_at,"
    " c.assignee, c.claimed_until, c.closed_at, c.closed_by,"
    " (SELECT count(*) FROM case_alerts a WHERE a.case_id = c.id) AS alerts FROM cases c"
)
_ALERTS = """
SELECT a.transaction_id, a.event_time, a.kind, a.score, a.added_at, t.merchant_id, t.decision,
    coalesce(t.payload_rest, t.payload) AS rest, i.label_is_fraud
FROM case_alerts a
JOIN transaction_ids i ON i.transaction_id = a.transaction_id
JOIN scored_transactions t ON t.transaction_id = a.transaction_id AND t.event_time = a.event_time
WHERE a.case_id = $1 ORDER BY a.event_time, a.transaction_id
"""
# the alerts a close labels: those with no review label yet (a verdict in the queue gave one)
_UNLABELLED = """
SELECT a.transaction_id, a.event_time FROM case_alerts a
WHERE a.case_id = $1 AND NOT EXISTS (
    SELECT 1 FROM labels l WHERE l.transaction_id = a.transaction_id AND l.source = 'review')
ORDER BY a.event_time, a.transaction_id
"""
# the case's open review items, locked in one order (a verdict updates its item first)
_LOCK_ITEMS = """
SELECT q.transaction_id FROM review_queue q
JOIN case_alerts a ON a.transaction_id = q.transaction_id
WHERE a.case_id = $1 AND q.verdict IS NULL ORDER BY q.transaction_id FOR UPDATE OF q
"""
# an alert joining is recorded by its case_alerts row: shown as riverguard's action
_AUDIT = """
SELECT at, who, action, detail FROM (
    SELECT added_at AS at, 'riverguard' AS who, 'alert' AS action,
        jsonb_build_object('transaction_id', transaction_id, 'kind', kind)::text AS detail,
        0 AS id
    FROM case_alerts WHERE case_id = $1
    UNION ALL
    SELECT at, who, action, detail::text, id FROM case_audit WHERE case_id = $1
) a ORDER BY at, id
"""
_VERDICT = {"fraud": "fraud", "legitimate": "legitimate", "inconclusive": "unsure"}


def _row(row: Any) -> dict[str, Any]:
    case = dict(row)
    case["priority"] = PRIORITIES[row["priority"] - 1]
    return case


class PgCaseStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def cases(self, query: CaseFilter) -> list[dict[str, Any]]:
        conditions: list[str] = []
        args: list[Any] = []

        def bind(sql: str, value: Any) -> None:
            args.append(value)
            conditions.append(sql.replace("?", f"${len(args)}"))

        if query.status == "active":
            conditions.append("c.status <> 'closed'")
        else:
            bind("c.status = ?", query.status)
        if query.priority is not None:
            bind("c.priority = ?", PRIORITIES.index(query.priority) + 1)
        if query.assignee is not None:
            bind("c.assignee = ? AND c.claimed_until > now()", query.assignee)
        if query.card_id is not None:
            bind("c.card_id = ?", query.card_id)
        order = (
            "c.closed_at DESC, c.id"
            if query.status == "closed"
            else "c.priority, c.opened_at, c.id"
        )
        args.append(query.limit)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self.pool.fetch(f"{_CASE} {where} ORDER BY {order} LIMIT ${len(args)}", *args)
        return [_row(r) for r in rows]

    async def case(self, case_id: int) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(f"{_CASE} WHERE c.id = $1", case_id)
        return None if row is None else _row(row)

    async def alerts(self, case_id: int) -> list[dict[str, Any]]:
        out = []
        for row in await self.pool.fetch(_ALERTS, case_id):
            rest = codec.rest_fields(row["rest"], parse_float=str)
            alert = {k: row[k] for k in ("transaction_id", "event_time", "kind", "score")}
            alert.update(merchant_id=row["merchant_id"], decision=row["decision"],
                         amount=_number(rest.get("amount")), currency=rest.get("currency"),
                         label=row["label_is_fraud"])  # fmt: skip
            out.append(alert)
        return out

    async def notes(self, case_id: int) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT author, at, body FROM case_notes WHERE case_id = $1 ORDER BY id", case_id
        )
        return [dict(r) for r in rows]

    async def audit(self, case_id: int) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(_AUDIT, case_id)
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    async def _locked(self, conn: Any, case_id: int, who: str, now: datetime) -> Any:
        """The case row, locked; raises when closed or held by someone else; None: no case."""
        row = await conn.fetchrow(
            "SELECT status, outcome, closed_by, assignee, claimed_until FROM cases"
            " WHERE id = $1 FOR UPDATE",
            case_id,
        )
        if row is None:
            return None
        if row["status"] == "closed":
            raise AlreadyClosed(row["outcome"], row["closed_by"])
        holder, until = row["assignee"], row["claimed_until"]
        if holder is not None and holder != who and until > now:
            raise Held(holder, until)
        return row

    @staticmethod
    async def _audit(conn: Any, case_id: int, who: str, now: datetime, action: str,
                     detail: dict[str, Any]) -> None:  # fmt: skip
        await conn.execute(
            "INSERT INTO case_audit (case_id, at, who, action, detail) VALUES ($1, $2, $3, $4, $5)",
            case_id, now, who, action, json.dumps(detail, default=str),
        )  # fmt: skip

    async def claim(self, case_id: int, who: str, now: datetime, hold: timedelta) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._locked(conn, case_id, who, now)
            if row is None:
                return False
            status = "investigating"
            await conn.execute(
                "UPDATE cases SET assignee = $2, claimed_until = $3, status = $4, updated_at = $5"
                " WHERE id = $1",
                case_id, who, now + hold, status, now,
            )  # fmt: skip
            detail = {"status": [row["status"], status], "until": (now + hold).isoformat()}
            if row["assignee"] != who:
                detail["assignee"] = [row["assignee"], who]
            await self._audit(conn, case_id, who, now, "claim", detail)
        return True

    async def release(self, case_id: int, who: str, now: datetime) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._locked(conn, case_id, who, now)
            if row is None:
                return False
            await conn.execute(
                "UPDATE cases SET assignee = NULL, claimed_until = NULL, updated_at = $2"
                " WHERE id = $1",
                case_id,
                now,
            )
            await self._audit(
                conn, case_id, who, now, "release", {"assignee": [row["assignee"], None]}
            )
        return True

    async def note(self, case_id: int, who: str, now: datetime, body: str) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("SELECT 1 FROM cases WHERE id = $1", case_id) is None:
                return False
            await conn.execute(
                "INSERT INTO case_notes (case_id, author, at, body) VALUES ($1, $2, $3, $4)",
                case_id, who, now, body,
            )  # fmt: skip
            await self._audit(conn, case_id, who, now, "note", {"chars": len(body)})
        return True

    async def close(self, case_id: int, outcome: Outcome, who: str, now: datetime) -> int | None:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._locked(conn, case_id, who, now)
            if row is None:
                return None
            await conn.execute(
                "UPDATE cases SET status = 'closed', outcome = $2, closed_at = $3, closed_by = $4,"
                " updated_at = $3, assignee = NULL, claimed_until = NULL WHERE id = $1",
                case_id, outcome, now, who,
            )  # fmt: skip
            seqs = await self._label(conn, case_id, outcome, who, now)
            detail = {"status": [row["status"], "closed"], "outcome": outcome, "labels": len(seqs)}
            await self._audit(conn, case_id, who, now, "close", detail)
        return len(seqs)

    async def _label(
        self, conn: Any, case_id: int, outcome: Outcome, who: str, now: datetime
    ) -> list[int]:
        """The labels of a close (none for inconclusive); the case's open review items close."""
        # a verdict on one of these items in flight (another analyst, maybe another process)
        # commits first: its label is then seen below, and the transaction is labelled once
        await conn.execute(_LOCK_ITEMS, case_id)
        pending = [] if outcome == "inconclusive" else await conn.fetch(_UNLABELLED, case_id)
        labels = [
            Label(transaction_id=r["transaction_id"], is_fraud=outcome == "fraud",
                  labeled_at=max(now, r["event_time"]), source="review")
            for r in pending
        ]  # fmt: skip
        seqs = await insert_received(conn, labels)
        judged = await conn.fetch(
            "UPDATE review_queue q SET verdict = $2, analyst = $3, decided_at = $4,"
            " note = 'case ' || $1::text, label_seq = s.seq"
            " FROM case_alerts a LEFT JOIN unnest($5::text[], $6::bigint[]) AS s(id, seq)"
            " ON s.id = a.transaction_id"
            " WHERE a.case_id = $1 AND q.transaction_id = a.transaction_id AND q.verdict IS NULL"
            " RETURNING a.transaction_id, a.event_time",
            case_id, _VERDICT[outcome], who, now,
            [lb.transaction_id for lb in labels], seqs,
        )  # fmt: skip
        # each review item the close judged is a verdict published outward, in this transaction
        await conn.execute(
            "INSERT INTO decision_outbox (transaction_id, event_time, kind)"
            " SELECT id, at, 'verdict' FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)",
            [r["transaction_id"] for r in judged], [r["event_time"] for r in judged],
        )  # fmt: skip
        return seqs

    async def counts(self, now: datetime, sla: Sla) -> dict[str, tuple[int, int]]:
        rows = await self.pool.fetch(
            "SELECT priority, count(*) AS active, count(*) FILTER (WHERE opened_at <"
            " $1::timestamptz - make_interval(secs => (ARRAY[$2, $3, $4]::float8[])[priority]))"
            " AS overdue"
            " FROM cases WHERE status <> 'closed' GROUP BY priority",
            now, sla.high, sla.medium, sla.low,
        )  # fmt: skip
        return {PRIORITIES[r["priority"] - 1]: (int(r["active"]), int(r["overdue"])) for r in rows}


def _number(amount: Any) -> float | None:
    """A stored amount (a decimal string) as the JSON number the API answers."""
    return None if amount is None else float(amount)
