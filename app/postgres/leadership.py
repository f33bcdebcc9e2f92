"""Learner leadership on Postgres: a session advisory lock plus a fenced epoch.

The leader holds ``pg_advisory_lock(LOCK_KEY)`` on a dedicated connection whose TCP
keepalives are short, so the server notices a dead holder (a killed process, a lost host) in
seconds and releases the lock. On taking the lock, the leader bumps the epoch of the
``learner_lease`` row; every learner write checks that epoch in its own transaction
(:func:`check_epoch`), so a stale leader writes nothing.

A paused leader (SIGSTOP, a long GC pause, a frozen VM) keeps its TCP session alive — its
kernel still answers keepalives — and so keeps the lock. The leader therefore renews the lease
every ``lease_seconds / 3``; a standby that finds the lease older than ``lease_seconds``
terminates the holder's session (``pg_terminate_backend``), which releases the lock. When the
paused leader wakes up, its next write fails the epoch check and it steps down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.core.ports import Fenced

log = logging.getLogger(__name__)
LOCK_KEY = 0x72697665  # "rive": one learner per database

KEEPALIVES = {  # server side: a silent client is dropped after ~idle + interval * count
    "tcp_keepalives_idle": "2",
    "tcp_keepalives_interval": "1",
    "tcp_keepalives_count": "3",
}


async def check_epoch(conn: Any, epoch: int) -> None:
    """Inside a learner write's transaction: raise :class:`Fenced` unless ``epoch`` leads."""
    current = await conn.fetchval("SELECT epoch FROM learner_lease WHERE id = 1 FOR SHARE")
    if current != epoch:
        raise Fenced(f"epoch {epoch} is stale (the lease is at {current})")


@dataclass
class PgLeadership:
    """Acquire, keep and lose the learner lease. ``epoch`` is valid while ``leading``."""

    database_url: str
    lease_seconds: float = 10.0
    holder: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    epoch: int = 0
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    _conn: Any = None
    _renewer: asyncio.Task[None] | None = None

    @property
    def leading(self) -> bool:
        return self._conn is not None and not self.lost.is_set()

    async def acquire(self, poll: float = 1.0) -> int:
        """Wait until this process leads; return its (new) epoch."""
        while True:
            if await self.try_acquire():
                return self.epoch
            await asyncio.sleep(poll)

    async def try_acquire(self) -> bool:
        """One attempt: lead now (True), or evict a stale leader and report False."""
        if self.leading:
            return True
        conn = await asyncpg.connect(self.database_url, server_settings=KEEPALIVES)
        try:
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                self.epoch = await self._take(conn)
                self._conn, self.lost = conn, asyncio.Event()
                self._renewer = asyncio.create_task(self._renew(), name="lease-renewal")
                log.info("learner leadership taken: epoch %d (%s)", self.epoch, self.holder)
                return True
            await self._evict_if_stale(conn)
        except BaseException:
            await conn.close()
            raise
        await conn.close()
        return False

    async def _take(self, conn: Any) -> int:
        # Waits for in-flight writes of the previous epoch (they hold the row FOR SHARE).
        epoch: int = await conn.fetchval(
            "UPDATE learner_lease SET epoch = epoch + 1, holder = $1,"
            " holder_pid = pg_backend_pid(), renewed_at = now() WHERE id = 1 RETURNING epoch",
            self.holder,
        )
        return epoch

    async def _evict_if_stale(self, conn: Any) -> None:
        """A leader that stopped renewing (paused, not dead) loses its session."""
        stale = await conn.fetchval(
            "SELECT holder_pid FROM learner_lease WHERE id = 1"
            " AND renewed_at < now() - make_interval(secs => $1)",
            self.lease_seconds,
        )
        if stale is not None:
            log.warning("learner lease expired; ending the stale holder's session %s", stale)
            await conn.execute("SELECT pg_terminate_backend($1)", stale)

    async def _renew(self) -> None:
        try:
            loop, every = asyncio.get_running_loop(), self.lease_seconds / 3
            while not self.lost.is_set():
                due = loop.time() + every
                await asyncio.sleep(every)
                if loop.time() - due > every:  # a stall this long eats into the lease
                    log.warning(
                        "lease renewal %.1fs late: the event loop stalled", loop.time() - due
                    )
                renewed = await self._conn.execute(
                    "UPDATE learner_lease SET renewed_at = now() WHERE id = 1 AND epoch = $1",
                    self.epoch,
                )
                if renewed != "UPDATE 1":
                    raise Fenced(f"epoch {self.epoch} was superseded")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the lock session died, or another leader took over
            log.error("learner leadership lost: %s", exc)
            self.lost.set()

    async def confirm(self) -> bool:
        """Whether the lease row still names this epoch (a read on the lock session)."""
        if not self.leading:
            return False
        # its own short session: the lock session is the renewer's (one query at a time)
        conn = await asyncpg.connect(self.database_url)
        try:
            epoch = await conn.fetchval("SELECT epoch FROM learner_lease WHERE id = 1")
        finally:
            await conn.close()
        return bool(epoch == self.epoch)

    async def release(self) -> None:
        """Give the lease up (shutdown): the session ends, the lock goes with it."""
        self.lost.set()
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn, self._renewer = None, None
