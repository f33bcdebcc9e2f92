"""Benchmark the model zoo against daily and weekly retrained batch models on fraud streams.

``handbook``: a stream shaped like the published simulated card-fraud benchmarks.
Customers spend around a personal mean at nearby terminals; fraud comes from high amounts
(> 220), compromised terminals (every transaction there is fraud for 28 days) and compromised
cards (a third of a card's transactions for 14 days, at five times the usual amount). Every
transaction is labelled exactly a week later. ``simulator``: the project's own simulator
(campaigns, drift, realistic label delays). Both go through ``features.reference``, so the
models see exactly the features the service computes, and are replayed prequentially
(:mod:`models.evaluation`). Everything is seeded: the quality figures are reproducible,
only events/s vary with the machine.

``handbook_cards``: the same customers with another fraud mix (few compromised terminals,
many compromised cards, amount threshold 400). Batch baselines: LightGBM retrained daily and
weekly on the last 28 days, gradient boosting weekly on all labels (:mod:`models.evaluation`).

Usage: ``python -m bench.models [--source handbook|handbook_cards|simulator|both|all]
[--models stack,blend] [--cache DIR]``; ``--streaming`` replays online models on a stream
generated on the fly (no baselines), for the 1M-label run: ``--streaming --days 58
--cards 10000 --models stack``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import pickle
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features import schema
from models import evaluation, zoo

DAY = 86_400.0
START = datetime(2026, 1, 1, tzinfo=UTC)


class Wire(NamedTuple):
    kind: Literal["tx", "label"]
    data: schema.Transaction | schema.Label
    tag: str | None


@dataclass(frozen=True)
class StreamConfig:
    customers: int = 1_000
    terminals: int = 2_000
    days: int = 90
    radius: float = 5.0
    label_delay_days: float = 7.0
    terminal_compromise_per_day: float = 0.4
    card_compromise_per_day: float = 0.6
    amount_threshold: float = 220.0
    seed: int = 7


@dataclass(frozen=True)
class RawTx:
    key: int
    t: float
    card: int
    terminal: int
    amount: float
    fraud: bool


def _population(cfg: StreamConfig, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    cust_xy = rng.uniform(0, 100, (cfg.customers, 2))
    term_xy = rng.uniform(0, 100, (cfg.terminals, 2))
    near = []
    for xy in cust_xy:
        dist = np.sqrt(((term_xy - xy) ** 2).sum(axis=1))
        idx = np.flatnonzero(dist < cfg.radius)
        near.append(idx if len(idx) else np.array([int(dist.argmin())]))
    profile = np.column_stack(
        [rng.uniform(5, 100, cfg.customers), rng.uniform(0, 4, cfg.customers)]
    )
    return profile, near


def _raw_transactions(cfg: StreamConfig) -> list[RawTx]:
    rng = np.random.default_rng(cfg.seed)
    profile, near = _population(cfg, rng)
    rows: list[tuple[float, int, int, float]] = []
    for card in range(cfg.customers):
        mean, per_day = profile[card]
        for day in range(cfg.days):
            for _ in range(rng.poisson(per_day)):
                t = day * DAY + float(np.clip(rng.normal(DAY / 2, 20_000), 0, DAY - 1))
                amount = rng.normal(mean, mean / 2)
                amount = rng.uniform(0, mean * 2) if amount <= 0 else amount
                rows.append((t, card, int(rng.choice(near[card])), round(float(amount) + 0.01, 2)))
    rows.sort()
    return _inject_fraud(cfg, rng, rows)


def _inject_fraud(
    cfg: StreamConfig, rng: np.random.Generator, rows: list[tuple[float, int, int, float]]
) -> list[RawTx]:
    bad_terminals: dict[int, float] = {}
    bad_cards: dict[int, float] = {}
    for day in range(cfg.days):
        for term in rng.choice(cfg.terminals, rng.poisson(cfg.terminal_compromise_per_day)):
            bad_terminals.setdefault(int(term), day * DAY)
        for card in rng.choice(cfg.customers, rng.poisson(cfg.card_compromise_per_day)):
            bad_cards.setdefault(int(card), day * DAY)
    out = []
    for key, (t, card, term, amount) in enumerate(rows):
        fraud = amount > cfg.amount_threshold
        since = bad_terminals.get(term)
        fraud |= since is not None and since <= t < since + 28 * DAY
        since = bad_cards.get(card)
        if since is not None and since <= t < since + 14 * DAY and rng.random() < 1 / 3:
            amount, fraud = round(amount * 5, 2), True
        out.append(RawTx(key, t, card, term, amount, bool(fraud)))
    return out


def handbook_records(cfg: StreamConfig) -> Iterator[Wire]:
    """The handbook-like stream as wire records, labels one ``label_delay_days`` later."""
    pending: list[tuple[float, int]] = []
    raw = _raw_transactions(cfg)
    for tx in raw:
        while pending and pending[0][0] <= tx.t:
            at, key = heapq.heappop(pending)
            yield _label(raw[key], at)
        yield _transaction(tx, cfg)
        heapq.heappush(pending, (tx.t + cfg.label_delay_days * DAY, tx.key))
    # labels due after the end of the period are dropped, as a real export would


def _transaction(tx: RawTx, cfg: StreamConfig) -> Wire:
    lat, lon = 48.0 + (tx.terminal * 7919 % 1000) / 1000, 2.0 + (tx.terminal * 104729 % 1000) / 1000
    data = schema.Transaction(
        transaction_id=f"tx_{tx.key}",
        card_id=f"card_{tx.card}",
        merchant_id=f"term_{tx.terminal}",
        amount=Decimal(f"{tx.amount:.2f}"),
        currency="EUR",
        timestamp=START + timedelta(seconds=tx.t),
        channel="pos",
        lat=lat,
        lon=lon,
    )
    return Wire("tx", data, "fraud" if tx.fraud else None)


def _label(tx: RawTx, at: float) -> Wire:
    source = "chargeback" if tx.fraud else "simulator"
    data = schema.Label(
        transaction_id=f"tx_{tx.key}",
        is_fraud=tx.fraud,
        labeled_at=START + timedelta(seconds=at),
        source=source,
    )
    return Wire("label", data, None)


def simulator_records(cards: int, days: int, seed: int) -> Iterator[Wire]:
    """A stream of the project's own simulator (campaigns, drift, realistic label delays)."""
    from simulator.generate import SimConfig, simulate

    for record in simulate(SimConfig(cards=cards, days=days, seed=seed)):
        if record.kind == "transaction":
            scenario = record.truth.scenario if record.truth else None
            yield Wire("tx", schema.Transaction.model_validate(_wire(record.data)), scenario)
        else:
            yield Wire("label", schema.Label.model_validate(_wire(record.data)), None)


def _wire(data: dict[str, object]) -> object:
    # through JSON, as the service reads it: amounts become Decimal, not float
    return schema.loads(json.dumps(data))


def featurize(records: Iterable[Wire]) -> Iterator[evaluation.Event]:
    """Features exactly as the service computes them (``features.reference``), in order."""
    from features.reference import ReferenceFeatures

    ref = ReferenceFeatures()
    seen: dict[str, schema.Transaction] = {}
    for wire in records:
        if isinstance(wire.data, schema.Transaction):
            tx = wire.data
            result = ref.transaction(tx)
            if result.status != "fresh":
                continue  # late or duplicate: the service would not score it anew
            seen[tx.transaction_id] = tx
            moment = tx.timestamp.timestamp()
            yield evaluation.Event(
                "tx", tx.transaction_id, moment, result.features, tag=wire.tag, card=tx.card_id
            )
        else:
            label = wire.data
            tx_of_label = seen.get(label.transaction_id)
            if tx_of_label is None:
                continue
            ref.label(label, tx_of_label)
            moment = label.labeled_at.timestamp()
            yield evaluation.Event("label", label.transaction_id, moment, label=label.is_fraud)


#: Handbook-shaped streams with other fraud mixes. ``handbook_cards``: few compromised
#: terminals, many compromised cards, and a higher amount threshold, so most fraud is
#: card-level (amount ratios, card velocity) rather than terminal-level.
MIXES: dict[str, dict[str, float]] = {
    "handbook": {},
    "handbook_cards": {
        "terminal_compromise_per_day": 0.1,
        "card_compromise_per_day": 2.0,
        "amount_threshold": 400.0,
    },
}


def load_events(source: str, args: argparse.Namespace) -> list[evaluation.Event]:
    cache = (
        Path(args.cache) / f"{source}-{args.days}-{args.cards}-{args.seed}.pkl"
        if args.cache
        else None
    )
    if cache is not None and cache.exists():
        with cache.open("rb") as fh:
            events: list[evaluation.Event] = pickle.load(fh)
            return events
    if source in MIXES:
        cfg = StreamConfig(
            customers=args.cards,
            terminals=2 * args.cards,
            days=args.days,
            seed=args.seed,
            **MIXES[source],
        )
        records = handbook_records(cfg)
    else:
        records = simulator_records(args.cards, args.days, args.seed)
    events = list(featurize(records))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with cache.open("wb") as fh:
            pickle.dump(events, fh)
    return events


def streaming(args: argparse.Namespace, specs: list[zoo.ModelSpec]) -> None:
    """One pass per model over a freshly generated stream, never materialised."""
    source = "handbook_cards" if args.source == "handbook_cards" else "handbook"
    cfg = StreamConfig(
        customers=args.cards,
        terminals=2 * args.cards,
        days=args.days,
        seed=args.seed,
        **MIXES[source],
    )
    print(f"### {source} (streamed): {args.days} days, {args.cards} cards, seed {args.seed}\n")
    rows = []
    for spec in specs:
        for run in evaluation.run_online_all(featurize(handbook_records(cfg)), spec):
            rows.append(evaluation.row(run))
    print(f"{rows[0].labels} labels, {rows[0].frauds} frauds\n")
    print("```\n" + evaluation.format_table(rows) + "\n```\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=[*MIXES, "simulator", "both", "all"], default="both")
    parser.add_argument("--models", default="stack,blend")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--baseline", choices=["none", "hgb", "logreg", "lgbm"], default="hgb")
    parser.add_argument("--cache", default="", help="directory caching featurized streams")
    parser.add_argument(
        "--streaming",
        action="store_true",
        help="replay online models as the stream is generated (no cache, no batch baselines): "
        "for streams too long to hold in memory",
    )
    args = parser.parse_args()
    specs = [zoo.ZOO[name] for name in args.models.split(",")]
    if args.streaming:
        streaming(args, specs)
        return
    print("## bench/models.py\n")
    sources = {"both": ["handbook", "simulator"], "all": [*MIXES, "simulator"]}.get(
        args.source, [args.source]
    )
    for source in sources:
        events = load_events(source, args)
        txs = [e for e in events if e.kind == "tx"]
        labels = [e for e in events if e.kind == "label"]
        rate = np.mean([bool(e.label) for e in labels]) if labels else 0.0
        print(f"### {source}: {len(txs)} transactions, {len(labels)} labels, {rate:.2%} fraud,")
        print(f"{args.days} days, {args.cards} cards, seed {args.seed}\n")
        rows = evaluation.evaluate(events, specs, baseline=args.baseline)
        print("```\n" + evaluation.format_table(rows) + "\n```\n", flush=True)


if __name__ == "__main__":
    main()
