"""Three days of seeded traffic through the real service, for the rule backtest and shadow
tests: transactions scored, 60% of them labelled, and waited for until the learner settled
every label."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.conftest import LABELER, SCORER, label, settings_for, tx

#: The rule both tests judge: big online payments, or a card seen three times in a day.
RULE = '(amount > 800.0 && channel == "ecom") || card_count_1d >= 3.0'
TRANSACTIONS = 300
#: No warm-up (the model decides from the first transaction), review from 0.3.
SCORING = {"warmup_labels": 0, "warmup_frauds": 0, "review_threshold": 0.3}


async def _count(url: str, query: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


def count(database_url: str, query: str) -> int:
    """A ``SELECT count(*)`` on its own connection."""
    return asyncio.run(_count(database_url, query))


def everything(now: datetime) -> tuple[datetime, datetime]:
    """A window around all the traffic seeded before ``now``."""
    return now - timedelta(days=4), now + timedelta(hours=1)


def windows(now: datetime) -> tuple[tuple[datetime, datetime], ...]:
    """The windows the figures are compared over: everything, then one day of it (the
    event-time bounds)."""
    return everything(now), (now - timedelta(days=2), now - timedelta(days=1))


@contextmanager
def service(
    database_url: str, redis_url: str, **extra: Any
) -> Iterator[tuple[TestClient, datetime]]:
    """The service with :data:`SCORING` (``extra``: more settings, as ``settings_for``), and
    now to the second (what traffic counts back from)."""
    settings = settings_for(database_url, redis_url, scoring=SCORING, **extra)
    now = datetime.now(UTC).replace(microsecond=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, now


def seed_traffic(
    client: TestClient, database_url: str, seed: int, now: datetime
) -> list[dict[str, Any]]:
    """:data:`TRANSACTIONS` scored over the three days before ``now`` (25 cards, 1 to 2,000,
    three channels), 60% labelled (a big one is fraud more often); the scoring answers, once
    the learner has settled every label."""
    rng = random.Random(seed)
    answers, labels = [], 0
    for _ in range(TRANSACTIONS):
        body = tx(
            card_id=f"card_{rng.randrange(25)}",
            amount=round(rng.uniform(1, 2000), 2),
            channel=rng.choice(["pos", "ecom", "atm"]),
            timestamp=(now - timedelta(minutes=rng.randrange(60, 3 * 24 * 60))).isoformat(),
        )
        answer = client.post("/v1/transactions", json=body, headers=SCORER)
        assert answer.status_code == 200, answer.text
        answers.append(answer.json())
        if rng.random() < 0.6:
            fraud = rng.random() < (0.6 if body["amount"] > 800 else 0.1)
            sent = client.post(
                "/v1/labels", json=label(body["transaction_id"], fraud), headers=LABELER
            )
            assert sent.status_code == 202
            labels += 1
    settled = "SELECT count(*) FROM transaction_ids WHERE label_is_fraud IS NOT NULL"
    for _ in range(200):  # the learner settles labels in the background
        if count(database_url, settled) == labels:
            break
        time.sleep(0.05)
    assert count(database_url, settled) == labels
    return answers
