"""Helpers of the `riverguard history backfill` end-to-end tests: a simulated history, the
command against a split deployment, its progress file and what Postgres holds after it."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from simulator.config import SimConfig
from simulator.generate import simulate
from simulator.jsonl import write_jsonl
from simulator.records import Record
from tests.service_process import KEY, RIVERGUARD, ServiceProcess


def history(
    tmp_path: Path, seed: int, cards: int, fraud_rate: float = 0.01
) -> tuple[Path, list[Record], list[Record]]:
    """61 simulated days ending a day ago: 60 days of history (written to a file), then the
    first 8 live transactions. A transaction's first outcome only is kept: a flip is recorded,
    not learned, so the counts below hold."""
    start = (datetime.now(UTC) - timedelta(days=62)).replace(microsecond=0)
    cut = start + timedelta(days=60)
    config = SimConfig(seed=seed, start=start, days=61, cards=cards, fraud_rate=fraud_rate)
    stream = list(simulate(config))
    kept, labelled = [], set()
    for record in stream:
        if record.event_time > cut:
            continue
        if record.kind == "label":
            if record.transaction_id in labelled:
                continue
            labelled.add(record.transaction_id)
        kept.append(record)
    live = [r for r in stream if r.kind == "transaction" and r.event_time > cut][:8]
    path = tmp_path / "history.jsonl"
    write_jsonl(kept, path)
    return path, kept, live


def backfill(path: Path, scorer: ServiceProcess, learner: ServiceProcess) -> subprocess.Popen[str]:
    """``riverguard history backfill`` of ``path`` into the deployment, started."""
    command: list[str] = [str(RIVERGUARD), "history", "backfill", str(path), "--url", scorer.url,
               "--learner-url", learner.url, "--api-key", KEY, "--wait", "60"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(run: subprocess.Popen[str], timeout: float) -> str:
    """The backfill's output once it has ended; killed (never left behind) if it has not
    ended after ``timeout`` seconds, which fails the test with its output's tail."""
    try:
        return run.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        run.kill()
        output = run.communicate()[0]
        raise AssertionError(f"the backfill had not ended after {timeout:.0f} s:\n"
                             f"{output[-3000:]}") from None  # fmt: skip


def done(path: Path) -> int:
    """The position the backfill's progress file says is finished (0 before it exists)."""
    try:
        return int(json.loads(path.with_name(path.name + ".progress").read_text())["done"])
    except (OSError, ValueError, KeyError):
        return 0


async def counts(database_url: str) -> tuple[int, int, list[int], int]:
    """Stored transactions, distinct ids among them, the learning log's sequence numbers and
    the distinct labels it learned."""
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval("SELECT count(*) FROM transaction_ids")
        distinct = await conn.fetchval("SELECT count(DISTINCT transaction_id) FROM transaction_ids")
        log = [r["seq"] for r in await conn.fetch("SELECT seq FROM learn_log ORDER BY seq")]
        once = await conn.fetchval("SELECT count(DISTINCT label_seq) FROM learn_log")
        return int(stored), int(distinct), log, int(once)
    finally:
        await conn.close()
