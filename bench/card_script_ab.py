"""A/B of two versions of the card script on one server and one filled state.

The state layout is the same in both versions, so both read the very same cards: the
history of :mod:`bench.features` (30 days, 5 payments a card a day), then rounds of
read-only calls (the script's peek mode: every read and feature computation, no write) for
day-31 events, 1 in 5 back-dated into day 30 (the scanning path). The versions alternate
round by round; per version the table gives the median over rounds of the server's time
inside the script (INFO commandstats) and of the Valkey process CPU, per call.

Usage: ``python -m bench.card_script_ab --old <git rev>`` (default: HEAD~1's card.lua).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import features as bench_features
from features import redis_io, store, windows
from features.config import FeatureConfig

ROOT = Path(__file__).resolve().parents[1]


def calls(
    feature_store: store.RedisFeatureStore, script: str, txs: list[object]
) -> list[redis_io.Command]:
    out: list[redis_io.Command] = []
    limits = (
        feature_store.config.lateness_ms,
        feature_store.config.card_retention_ms,
        feature_store.config.card_max_entries,
    )
    for tx in txs:
        e = windows.encode(tx)  # type: ignore[arg-type]
        blob = redis_io.CARD_ARGS.pack(
            redis_io.PEEK, e.ts, e.cents, e.merchant, 1, e.lat_u or 0, e.lon_u or 0, *limits, 0
        )
        state, fraud = feature_store.keys.card(tx.card_id)  # type: ignore[attr-defined]
        out.append((script, (state, fraud, state), (blob + e.digest,)))
    return out


async def measure(args: argparse.Namespace, port: int) -> None:
    client = store.connect(f"redis://127.0.0.1:{port}/0", max_connections=4)
    feature_store = store.RedisFeatureStore(client, FeatureConfig())
    old = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{args.old}:features/lua/card.lua"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    feature_store.scripts.register("card_old", old)
    await feature_store.load_scripts()
    rnd = random.Random(1)
    past = bench_features.history(args.cards, 500, rnd)
    for i in range(0, len(past), 100):
        await feature_store.score_batch(past[i : i + 100])
    day31 = [
        bench_features.make_tx(
            10**8 + n, rnd.randrange(args.cards), 30.0 - rnd.random() * (n % 5 == 0), rnd, 500
        )
        for n in range(args.calls)
    ]
    per: dict[str, list[tuple[float, float]]] = {"card_old": [], "card": []}
    for r in range(args.rounds):
        for script in ("card_old", "card") if r % 2 == 0 else ("card", "card_old"):
            batch = calls(feature_store, script, day31)
            await client.config_resetstat()
            cpu = await bench_features.valkey_cpu(feature_store)
            for i in range(0, len(batch), 100):
                await feature_store.scripts.run(batch[i : i + 100])
            cpu = await bench_features.valkey_cpu(feature_store) - cpu
            usec = (await client.info("commandstats"))["cmdstat_evalsha"]["usec"]
            per[script].append((usec / len(batch), cpu / len(batch) * 1e6))
    print(f"{args.cards} cards, {args.calls} calls a round, {args.rounds} rounds (medians)\n")
    print("| card script | µs in script per call | Valkey process µs per call |\n|---|---|---|")
    for script, rows in per.items():
        name = f"before ({args.old})" if script == "card_old" else "after (this tree)"
        inside = statistics.median(r[0] for r in rows)
        process = statistics.median(r[1] for r in rows)
        print(f"| {name} | {inside:.1f} | {process:.1f} |")
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="HEAD~1")
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    port = bench_features.free_port()
    with tempfile.TemporaryDirectory() as workdir:
        server = bench_features.start_valkey(port, workdir)
        try:
            asyncio.run(measure(args, port))
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
