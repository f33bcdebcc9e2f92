"""Micro-benchmark of decision rules: per-transaction cost of a 1-, 5- and 20-rule set.

Builds ``--contexts`` seeded transaction contexts (every feature, the score, list hits) and
times, per transaction: building the context (:func:`app.core.rules.context`), evaluating
:class:`app.core.rules.RuleSet` (CEL), and the same conditions written as plain Python
predicates (the floor an interpreter cannot beat). The rules are chosen to rarely match, so
every rule of a set is evaluated (the worst case: a matching decision rule ends the decision
rules). Prints a markdown table of median, p99 and mean µs per transaction.

Then the costliest rules the save-time checks accept: a family of rules built to cost as much
as the checks allow (one macro over a literal of up to 100 items whose body never stops early,
up to the length and estimated-cost limits) is put through the static checks and the measured
budget (the child process of app.core.rule_cost, default budgets); the costliest accepted one,
and a set of copies of it filling the whole-set budget, are evaluated on every context, and
the CPU time (``time.process_time``) they add per transaction is printed beside the baseline
of building the context alone.

Usage: ``python bench/rules.py [--contexts 5000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import asyncio
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

from app.core.rule_check import RuleError
from app.core.rule_cost import CostBudget, ProcessProber
from app.core.rulebook import RuleBook
from app.core.rules import VARIABLES, Rule, RuleSet, compile_rule, context
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
    costliest(contexts, args.repeat)
    saving()


L12 = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]"
#: The reported rule: four nested comprehensions, three hidden from a count over the text.
NESTED = (
    f"{L12}.exists( //\n amount, {L12}.exists( //\n score, {L12}.exists( //\n "
    f"hour_of_day, {L12}.exists(d, score + amount < d-99))))"
)


def saving() -> None:
    """Wall and this process's CPU time of the save-time checks (RuleBook.vet)."""
    book = RuleBook(store=None)  # type: ignore[arg-type]  # vet reads no store
    print("\n| save-time checks | wall ms | this process's CPU ms |\n|---|---:|---:|")
    for label, expression in (
        ("the reported 259-char rule (refused)", NESTED),
        ('`amount > 1000.0 && channel == "ecom"` (accepted)', CONDITIONS[0][0]),
    ):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            asyncio.run(book.vet(Rule(id="c", name="", expression=expression, action="review")))
        except RuleError as exc:
            assert exc.errors[0]["type"] == "too_complex"
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"| {label} | {wall * 1e3:.1f} | {cpu * 1e3:.1f} |")


def candidates() -> list[str]:
    """Rules built to be as costly as the checks allow: one macro over n items, its body k
    comparisons joined by ``||`` that are all false (no early stop)."""
    out = []
    for n in (25, 50, 75, 100):
        items = "[" + ",".join(str(i) for i in range(n)) + "]"
        for k in (1, 2, 4, 6, 8, 12):
            body = " || ".join(f"double(x) + amount == {i}.25" for i in range(k))
            out.append(f"{items}.exists(x, {body})")
    return out


def accepted(budget: CostBudget) -> list[tuple[float, str]]:
    """(measured µs, expression) of every candidate the checks accept, costliest first."""
    static = []
    for expression in candidates():
        try:
            compile_rule(Rule(id="c", name="", expression=expression, action="review"))
        except RuleError:
            continue
        static.append(expression)
    results = asyncio.run(
        ProcessProber(30.0).measure(
            static, VARIABLES, max_length=1_000, caps_us=[budget.rule_us] * len(static)
        )
    )
    costs = [(r["cost_us"], e) for r, e in zip(results, static, strict=True) if "cost_us" in r]
    return sorted((c, e) for c, e in costs if c <= budget.rule_us)[::-1]


def _cpu_per_tx(
    run: Callable[[dict[str, Any]], Any], contexts: list[dict[str, Any]], repeat: int
) -> float:
    began = time.process_time()
    for _ in range(repeat):
        for ctx in contexts:
            run(ctx)
    return (time.process_time() - began) / (repeat * len(contexts)) * 1e6


def costliest(contexts: list[dict[str, Any]], repeat: int) -> None:
    budget = CostBudget()
    ranked = accepted(budget)
    print(f"\n{len(candidates())} costly candidates, {len(ranked)} accepted (default budgets)")
    cost, expression = ranked[0]
    copies = max(1, int(budget.total_us // cost))
    one = RuleSet([compile_rule(Rule(id="c", name="", expression=expression, action="reason"))])
    many = RuleSet(
        compile_rule(Rule(id=f"c{i}", name="", expression=expression, action="reason"))
        for i in range(copies)
    )
    base = _cpu_per_tx(lambda ctx: None, contexts, repeat)
    print(f"costliest accepted: {len(expression)} chars, measured {cost:.0f} µs at save")
    print("| per transaction (CPU) | µs |\n|---|---:|")
    print(f"| loop baseline | {base:.2f} |")
    print(f"| the costliest accepted rule | {_cpu_per_tx(one.evaluate, contexts, repeat):.1f} |")
    print(
        f"| {copies} copies of it (the set budget) | {_cpu_per_tx(many.evaluate, contexts, repeat):.1f} |"
    )


if __name__ == "__main__":
    main()
