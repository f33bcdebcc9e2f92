"""Benchmark the model zoo on a synthetic fraud stream shaped like the public benchmarks.

The stream imitates the published simulated card-fraud benchmarks described in DESIGN §6:
customers spend around a personal mean at nearby terminals; fraud comes from high amounts,
compromised terminals (every transaction there is fraud for 28 days) and compromised cards
(a third of a card's transactions for 14 days, at five times its usual amount). Labels arrive
a week after the transaction, and the features mimic what the feature service computes:
per-card spending baselines over 1h/1d/7d/30d and label-derived merchant and card history
that only counts labels received before the transaction is scored.

Run ``python -m bench.models --help``. Everything is seeded; the figures are reproducible.
If ``simulator`` and ``features.reference`` exist, ``--source simulator`` uses them instead.
"""

from __future__ import annotations

import argparse
import heapq
import math
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from models import evaluation, zoo

DAY = 86_400.0
HOUR = 3_600.0


@dataclass(frozen=True)
class StreamConfig:
    customers: int = 1_000
    terminals: int = 2_000
    days: int = 90
    radius: float = 5.0
    label_delay_days: float = 7.0
    terminal_compromise_per_day: float = 0.4
    card_compromise_per_day: float = 0.6
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
        fraud = amount > 220
        since = bad_terminals.get(term)
        fraud |= since is not None and since <= t < since + 28 * DAY
        since = bad_cards.get(card)
        if since is not None and since <= t < since + 14 * DAY and rng.random() < 1 / 3:
            amount, fraud = round(amount * 5, 2), True
        out.append(RawTx(key, t, card, term, amount, bool(fraud)))
    return out


class _Window:
    """Events of one entity over the last 30 days: (time, amount) and label arrivals."""

    def __init__(self) -> None:
        self.txs: deque[tuple[float, float]] = deque()
        self.labels: deque[tuple[float, bool]] = deque()

    def trim(self, t: float) -> None:
        while self.txs and self.txs[0][0] < t - 30 * DAY:
            self.txs.popleft()
        while self.labels and self.labels[0][0] < t - 30 * DAY:
            self.labels.popleft()

    def amounts(self, t: float, span: float) -> list[float]:
        return [a for (u, a) in self.txs if u >= t - span]

    def frauds(self, t: float, span: float) -> tuple[int, int]:
        recent = [f for (u, f) in self.labels if u >= t - span]
        return sum(recent), len(recent)


def _card_features(w: _Window, t: float, amount: float) -> dict[str, float]:
    f: dict[str, float] = {"card_count_1h": float(len(w.amounts(t, HOUR)))}
    for name, span in (("1d", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY)):
        xs = w.amounts(t, span)
        f[f"card_count_{name}"] = float(len(xs))
        f[f"card_amount_sum_{name}"] = float(sum(xs))
        if xs:
            mean = sum(xs) / len(xs)
            f[f"card_amount_mean_{name}"] = mean
            f[f"amount_vs_card_mean_{name}"] = amount / mean
    xs = w.amounts(t, 30 * DAY)
    if len(xs) >= 2:
        std = float(np.std(xs))
        f["card_amount_zscore_30d"] = (amount - float(np.mean(xs))) / (std + 1.0)
    if w.txs:
        f["card_seconds_since_last"] = t - w.txs[-1][0]
    frauds, _ = w.frauds(t, 30 * DAY)
    f["card_fraud_30d"] = float(frauds)
    return f


def _merchant_features(w: _Window, t: float) -> dict[str, float]:
    f: dict[str, float] = {}
    for name, span in (("1d", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY)):
        f[f"merchant_count_{name}"] = float(len(w.amounts(t, span)))
        frauds, labels = w.frauds(t, span)
        f[f"merchant_fraud_{name}"] = float(frauds)
        if labels:
            f[f"merchant_fraud_ratio_{name}"] = frauds / labels
    return f


def synthetic_events(cfg: StreamConfig) -> Iterator[evaluation.Event]:
    """Transactions with point-in-time features and their labels, in event-time order."""
    raw = _raw_transactions(cfg)
    cards: defaultdict[int, _Window] = defaultdict(_Window)
    terminals: defaultdict[int, _Window] = defaultdict(_Window)
    pending: list[tuple[float, int]] = []  # (label arrival time, key)
    for tx in raw:
        while pending and pending[0][0] <= tx.t:
            at, key = heapq.heappop(pending)
            done = raw[key]
            cards[done.card].labels.append((at, done.fraud))
            terminals[done.terminal].labels.append((at, done.fraud))
            yield evaluation.Event("label", str(key), at, label=done.fraud)
        card, term = cards[tx.card], terminals[tx.terminal]
        card.trim(tx.t)
        term.trim(tx.t)
        hour = (tx.t % DAY) / HOUR
        feats = {
            "amount": tx.amount,
            "log_amount": math.log1p(tx.amount),
            "hour_of_day": hour,
            "is_night": float(hour < 6),
            "is_weekend": float((tx.t // DAY) % 7 >= 5),
        }
        feats |= _card_features(card, tx.t, tx.amount) | _merchant_features(term, tx.t)
        card.txs.append((tx.t, tx.amount))
        term.txs.append((tx.t, tx.amount))
        yield evaluation.Event("tx", str(tx.key), tx.t, features=feats)
        delay = cfg.label_delay_days * DAY
        heapq.heappush(pending, (tx.t + delay, tx.key))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(zoo.ZOO))
    parser.add_argument("--days", type=int, default=StreamConfig.days)
    parser.add_argument("--customers", type=int, default=StreamConfig.customers)
    parser.add_argument("--terminals", type=int, default=StreamConfig.terminals)
    parser.add_argument("--seed", type=int, default=StreamConfig.seed)
    parser.add_argument("--baseline", choices=["none", "hgb", "logreg"], default="hgb")
    args = parser.parse_args()
    cfg = StreamConfig(
        customers=args.customers, terminals=args.terminals, days=args.days, seed=args.seed
    )
    events = list(synthetic_events(cfg))
    specs = [zoo.ZOO[name] for name in args.models.split(",")]
    table = evaluation.evaluate(events, specs, baseline=args.baseline)
    print(evaluation.format_table(table))


if __name__ == "__main__":
    main()
