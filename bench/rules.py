"""Micro-benchmark of decision rules: per-transaction cost of a 1-, 5- and 20-rule set.

Builds ``--contexts`` seeded transaction contexts (every feature, the score, list hits) and
times, per transaction: building the context (:func:`app.core.rules.context`), evaluating
:class:`app.core.rules.RuleSet` (CEL), and the same conditions written as plain Python
predicates (the floor an interpreter cannot beat). The rules are chosen to rarely match, so
every rule of a set is evaluated (the worst case: a matching decision rule ends the decision
rules). Prints a markdown table of median, p99 and mean µs per transaction.

Usage: ``python bench/rules.py [--contexts 5000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.core.rules import Rule, RuleSet, compile_rule, context
from features import definitions
from features.schema import Transaction

Predicate = Callable[[dict[str, Any]], bool]
#: (CEL condition, the same in Python), cycled to fill a set of n rules.
CONDITIONS: list[tuple[str, Predicate]] = [
    ('amount > 5000.0 && channel == "ecom"', lambda c: c["amount"] > 5000.0 and c["channel"] == "ecom"),
    ('"block" in card_lists', lambda c: "block" in c["card_lists"]),
    ("score > 0.99 && card_age_seconds < 600.0", lambda c: c["score"] > 0.99 and c["card_age_seconds"] < 600.0),
    ('country in ["KP", "IR"] && amount > 100.0', lambda c: c["country"] in ("KP", "IR") and c["amount"] > 100.0),
    ("card_count_1h >= 20.0 || card_distinct_merchants_1d > 50.0", lambda c: c["card_count_1h"] >= 20.0 or c["card_distinct_merchants_1d"] > 50.0),
]  # fmt: skip


def rules(n: int) -> tuple[RuleSet, list[Predicate]]:
    chosen = [CONDITIONS[i % len(CONDITIONS)] for i in range(n)]
    compiled = [
        compile_rule(
            Rule(
                id=f"r{i}",
                name="",
                expression=expression,
                action="reason" if i % 3 == 2 else "review",
                priority=i,
            )
        )
        for i, (expression, _) in enumerate(chosen)
    ]
    return RuleSet(compiled), [predicate for _, predicate in chosen]


def inputs(
    n: int, seed: int
) -> list[tuple[Transaction, dict[str, float], float, dict[str, list[str]]]]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        tx = Transaction(
            transaction_id=f"t{i}",
            card_id=f"c{rng.randrange(1000)}",
            merchant_id=f"m{rng.randrange(200)}",
            amount=Decimal(str(round(rng.uniform(1, 3000), 2))),
            currency="EUR",
            timestamp=start + timedelta(seconds=rng.randrange(86_400 * 30)),
            country=rng.choice(["FR", "DE", "US", "GB"]),
            channel=rng.choice(["pos", "ecom", "atm"]),
        )
        features = {name: rng.uniform(0, 10) for name in definitions.FEATURE_NAMES}
        features["card_age_seconds"] = rng.uniform(1_000, 1e7)
        hits = {"card": ["watch"] if rng.random() < 0.01 else []}
        out.append((tx, features, rng.random() * 0.9, hits))
    return out


def _time(samples: list[float], run: Callable[[], Any]) -> None:
    began = time.perf_counter()
    run()
    samples.append(time.perf_counter() - began)


def _all(predicates: list[Predicate], ctx: dict[str, Any]) -> list[bool]:
    return [predicate(ctx) for predicate in predicates]


def _row(label: str, samples: list[float]) -> str:
    us = sorted(s * 1e6 for s in samples)
    p99 = us[int(0.99 * (len(us) - 1))]
    return f"| {label} | {statistics.median(us):.2f} | {p99:.2f} | {statistics.fmean(us):.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    data = inputs(args.contexts, args.seed)
    contexts = [context(*item) for item in data]
    print("| per transaction | median µs | p99 µs | mean µs |\n|---|---:|---:|---:|")
    built: list[float] = []
    for _ in range(args.repeat):
        for item in data:
            _time(built, functools.partial(context, *item))
    print(_row("build the context (62 features + transaction)", built))
    for n in (1, 5, 20):
        ruleset, predicates = rules(n)
        cel_times: list[float] = []
        py_times: list[float] = []
        for _ in range(args.repeat):
            for ctx in contexts:
                _time(cel_times, functools.partial(ruleset.evaluate, ctx))
                _time(py_times, functools.partial(_all, predicates, ctx))
        print(_row(f"{n:>2} rule(s), CEL RuleSet.evaluate", cel_times))
        print(_row(f"{n:>2} rule(s), Python predicates", py_times))


if __name__ == "__main__":
    main()
