"""The scoring stage alone: inference plans against the River objects they were compiled from.

Trains the default lineup (champion ``stack``, the reproducible twin of the service's default
``stack_live``; challengers ``logreg`` and ``hat``) prequentially
on the first ``--labels`` labels of a featurized stream (``bench/models.py``'s streams and
cache), compiles each member's plan (:mod:`models.plans`), then scores the next ``--probe``
transactions (cleaned features, as the pool hands them to its models):

* **bare loop**: iterating over the rows (and batches) and doing nothing;
* **River**: every member's ``predict_with_parts`` per row (what ``ModelPool.score`` runs);
* **plans**: ``score_one`` per row at batch size 1; at larger sizes the batch's dicts are put
  in one matrix (:func:`models.plans.matrix`, counted) and every plan's ``score_many`` runs.

Figures are process CPU µs per transaction (``time.process_time``, best of ``--repeat``: the
machine is shared), and the largest difference between plan and River scores.

Usage: ``python -m bench.plans --cache /tmp/rgc [--source handbook] [--labels 20000]``
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.models import load_events
from models import evaluation, plans, zoo
from models.member import Member
from models.plans import Plan
from models.pool import ModelPool

Rows = list[dict[str, float]]

LINEUP = ["stack", "logreg", "hat"]


def train(args: argparse.Namespace) -> tuple[ModelPool, list[dict[str, float]]]:
    """The lineup after ``args.labels`` labels, and the transactions that follow."""
    events = load_events(args.source, args)
    pool = ModelPool([zoo.ZOO[n] for n in LINEUP], champion=LINEUP[0])
    stored: dict[str, tuple[dict[str, float], dict[str, float], dict[str, dict[str, float]]]] = {}
    learned, probe = 0, []
    for event in events:
        if event.kind == "tx":
            x = evaluation.clean(event.features or {})
            if learned >= args.labels:
                probe.append(x)
                if len(probe) >= args.probe:
                    break
                continue
            scores = pool.score(x)
            parts = {s.name: s.parts for s in scores if s.parts is not None}
            stored[event.key] = (x, {s.name: s.score for s in scores}, parts)
        elif event.key in stored and learned < args.labels:
            x, scored, parts = stored.pop(event.key)
            pool.learn(x, bool(event.label), scored, parts, at=event.time)
            learned += 1
    return pool, probe


def cpu_us(run: Callable[[], object], rows: int, repeat: int) -> float:
    """Best-of-``repeat`` process CPU µs per row of one call of ``run``."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best / rows * 1e6


def batches(rows: Rows, size: int) -> list[Rows]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def per_model(name: str, member: Member, plan: Plan | None, probe: Rows, repeat: int) -> str:
    """One model's CPU µs per row, River vs plan, the largest difference and the plan's size."""
    n = len(probe)
    river_us = cpu_us(lambda: [member.predict_with_parts(x) for x in probe], n, repeat)
    if plan is None:
        return f"{name:>8}  River {river_us:7.1f}   no plan"
    plan_us = cpu_us(lambda: [plan.score_one(x) for x in probe], n, repeat)
    diff = max(abs(plan.predict_one(x) - (member.predict(x) or 0.0)) for x in probe)
    kib = len(pickle.dumps(plan)) / 1024
    return (
        f"{name:>8}  River {river_us:7.1f}   plan {plan_us:6.2f}   "
        f"max diff {diff:.1e}   {kib:6.1f} KiB pickled"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="handbook")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", default="")
    parser.add_argument("--labels", type=int, default=20_000)
    parser.add_argument("--probe", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pool, probe = train(args)
    compiled = {name: plans.compile_plan(pool.members[name].model) for name in LINEUP}
    ready = {name: plan for name, plan in compiled.items() if plan is not None}
    members = [pool.members[name] for name in LINEUP]
    features = plans.features_of(dict(ready))
    columns = {n: np.array([features.index(f) for f in p.features]) for n, p in ready.items()}
    n = len(probe)

    def river() -> None:
        for x in probe:
            for member in members:
                member.predict_with_parts(x)

    def plan_rows() -> None:
        for x in probe:
            for plan in ready.values():
                plan.score_one(x)

    def plan_batches(size: int) -> Callable[[], None]:
        chunks = batches(probe, size)

        def run() -> None:
            for chunk in chunks:
                X = plans.matrix(chunk, features)
                for name, plan in ready.items():
                    plan.score_many(X[:, columns[name]])

        return run

    def bare(size: int) -> Callable[[], None]:
        chunks = batches(probe, size)

        def run() -> None:
            for chunk in chunks:
                for _ in chunk:
                    pass

        return run

    river_us = cpu_us(river, n, args.repeat)
    print("## bench/plans.py\n")
    print(f"Lineup {LINEUP} after {args.labels} labels of `{args.source}` ({args.days} days, ")
    print(f"{args.cards} cards, seed {args.seed}); {n} transactions, {len(features)} features")
    missing = sorted(set(LINEUP) - set(ready))
    print(f"read by the plans; plans for {sorted(ready)} (none for {missing}).\n")
    print("```")
    print(f"{'batch':>5} {'bare loop':>10} {'River':>10} {'plans':>10} {'speed-up':>9}  CPU µs/tx")
    for size in (1, 64, 500):
        plan_run = plan_rows if size == 1 else plan_batches(size)
        plan_us = cpu_us(plan_run, n, args.repeat)
        bare_us = cpu_us(bare(size), n, args.repeat)
        ratio = river_us / plan_us
        print(f"{size:>5} {bare_us:>10.2f} {river_us:>10.1f} {plan_us:>10.2f} {ratio:>8.1f}x")
    print("```\n")
    print("Per model at batch size 1 (CPU µs/tx), and the largest |plan - River| over the probe:\n")
    print("```")
    for name, member in zip(LINEUP, members, strict=True):
        print(per_model(name, member, ready.get(name), probe, args.repeat))
    print("```")


if __name__ == "__main__":
    main()
