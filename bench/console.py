"""Benchmark: server time of every console page with 10,000 open review items.

Starts an embedded Valkey and PostgreSQL (loopback, their own data directories) and the whole
service in-process (``create_app``, lifespan included), configured so that every transaction
is decided ``review`` (no warm-up, review threshold 0) and one rule decides the large ones.
Seeds ``--items`` transactions through the real storage path — :meth:`ScoringService.score`
in batches, as the Kafka worker calls it: features in Redis, every model, the decision layer,
the group-committed insert that opens each review item — over ``--cards`` cards and the last
five days (a shadow rule's hits stored with them), plus ``--entries`` list entries through
the list book. Then requests each page
``--requests`` times with a signed-in session and times it *server-side*: from the outermost
middleware receiving the request to the last body byte sent (what the client waits for,
minus the client and the network). The overview's 5 s cache of today's counts is off here,
so every overview request counts them. A bare endpoint in the same application (same
middleware, a constant small HTML page) is the baseline. Prints a markdown table of p50 / p95
/ max ms per page.

    .venv/bin/python -m bench.console [--items 10000] [--requests 200] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from app.config import ConsoleSettings, ScoringSettings, Settings
from app.core.lists import ListEntry
from app.core.rules import Rule
from app.main import create_app
from features.schema import Transaction

KEY = "bench-admin-key"
Scope = MutableMapping[str, Any]
ASGI = Callable[
    [Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


class ServerTime:
    """Outermost ASGI wrapper: seconds from receiving a request to its last body byte."""

    def __init__(self, app: ASGI) -> None:
        self.app = app
        self.samples: list[float] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def timed_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.samples.append(time.perf_counter() - start)

        await self.app(scope, receive, timed_send)


def transactions(count: int, cards: int, seed: int) -> list[Transaction]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for i in range(count):
        out.append(
            Transaction(
                transaction_id=f"b{i:06d}",
                card_id=f"card_{rng.randrange(cards)}",
                merchant_id=f"m_{rng.randrange(300)}",
                amount=Decimal(str(round(rng.lognormvariate(3.5, 1.2) + 0.01, 2))),
                currency="EUR",
                timestamp=now - timedelta(seconds=rng.uniform(60, 5 * 86_400)),
                country=rng.choice(["FR", "DE", "US", "GB", "ES"]),
                channel=rng.choice(["pos", "ecom", "atm"]),
            )
        )
    out.sort(key=lambda tx: tx.timestamp)  # as a stream would bring them
    return out


async def seed(app: FastAPI, args: argparse.Namespace) -> None:
    state = app.state.riverguard
    await state.rules.create(
        Rule(id="large", name="large", expression="amount > 2000.0", action="review", priority=1),
        "bench",
    )
    shadow = Rule(id="shadow-large", name="", expression="amount > 1000.0", action="decline",
                  enabled=False, shadow=True)  # fmt: skip
    await state.rules.create(shadow, "bench")  # its hits are stored with the seeded rows
    for n in range(4):  # rules that decide nothing here: rows of the page all the same
        await state.rules.create(
            Rule(id=f"r{n}", name="", expression=f"amount > {1e6 - n}", action="decline"),
            "bench",
        )
    txs = transactions(args.items, args.cards, args.seed)
    for start in range(0, len(txs), 500):
        await state.service.score(txs[start : start + 500], "kafka")
    now = datetime.now(UTC)
    for n in range(args.entries):
        entry = ListEntry(entity="merchant", value=f"lm_{n:05d}", kind="watch", reason="bench",
                          created_at=now, created_by="bench")  # fmt: skip
        await state.lists.store.add(entry)
    await state.lists.refresh()


def sign_in(client: TestClient) -> None:
    form = client.get("/console/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf
    answer = client.post("/console/login", data={"csrf": csrf.group(1), "key": KEY},
                         follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303, answer.status_code


def measure(client: TestClient, timer: ServerTime, paths: list[str]) -> list[float]:
    timer.samples.clear()
    for path in paths:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
    assert len(timer.samples) == len(paths)
    return [s * 1000 for s in timer.samples]


def row(name: str, ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[max(int(len(ordered) * 0.95) - 1, 0)]
    return f"| {name} | {statistics.median(ordered):.2f} | {p95:.2f} | {ordered[-1]:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--cards", type=int, default=1_000)
    parser.add_argument("--entries", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    from app.tools.embedded import EmbeddedStack

    with EmbeddedStack(fast_postgres=True) as stack:
        urls = stack.start(kafka=False)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=urls.database_url,
            redis_url=urls.redis_url,
            api_keys=f"{KEY}=score|label|review|admin@bench",
            scoring=ScoringSettings(
                warmup_labels=0, warmup_frauds=0, review_threshold=0.0, decline_threshold=1.0
            ),
            console=ConsoleSettings(secret="bench-console-secret"),
        )
        app = create_app(settings)

        @app.get("/bench/bare", include_in_schema=False)
        async def bare() -> HTMLResponse:
            return HTMLResponse("<!doctype html><p>bare</p>")

        timer = ServerTime(app)
        with TestClient(timer, base_url="http://127.0.0.1") as client:  # type: ignore[arg-type]
            started = time.perf_counter()
            assert client.portal is not None
            client.portal.call(seed, app, args)
            seeded = time.perf_counter() - started
            app.state.console_today.ttl = 0.0  # count today's decisions on every request
            state = app.state.riverguard
            opened = client.portal.call(
                state.records.pool.fetchval,
                "SELECT count(*) FROM review_queue WHERE verdict IS NULL",
            )
            # the large-amount rule's code: a filter few items match (the untrained model's
            # reviews carry no reasons), so the scan reads far down the queue — the worst case
            reason = "rule_large"
            sign_in(client)
            rng = random.Random(args.seed)
            n = args.requests
            ids = [f"b{rng.randrange(args.items):06d}" for _ in range(n)]
            pages = {
                "bare endpoint (baseline)": ["/bench/bare"] * n,
                "overview": ["/console/"] * n,
                "queue (by score, 50 rows)": ["/console/queue"] * n,
                "queue (by age)": ["/console/queue?order=age"] * n,
                "queue (rare reason + amount ≥ 100 + waiting ≥ 0 min)": [
                    f"/console/queue?reason={reason}&min_amount=100&older_than=0"
                ]
                * n,
                "item (transaction, features, scores, card history, next)": [
                    f"/console/queue/{i}" for i in ids
                ],
                "rules (6 rules, hits per day)": ["/console/rules"] * n,
                "rule (audit history)": ["/console/rules/large"] * n,
                "shadow rule (live figures, 7 d)": ["/console/rules/shadow-large"] * n,
                "shadow rule (live figures, 30 d)": ["/console/rules/shadow-large?window=30"] * n,
                "lists (1,000 entries, first 200)": ["/console/lists"] * n,
                "lists (prefix search)": ["/console/lists?prefix=lm_004"] * n,
            }
            for paths in pages.values():  # warm: templates compiled, plans cached
                measure(client, timer, paths[:10])
            print(f"open review items: {opened}; seeded in {seeded:.1f} s; {n} requests a page\n")
            print("| page | p50 ms | p95 ms | max ms |")
            print("|---|---:|---:|---:|")
            for name, paths in pages.items():
                print(row(name, measure(client, timer, paths)))


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
