"""The learner's CPU per label: the default lineup's ``ModelPool.learn``, model by model.

The one learner must keep up with the label rate (every transaction eventually gets a
label), and its cost per label is the sum of its models' ``learn_one`` plus the pool's own
bookkeeping (guard, rolling metrics, drift detectors, explanation baselines). This replays a
featurized stream (``bench/models.py``'s streams and cache) prequentially through a pool per
lineup — score each transaction, learn each label from the features stored at scoring
time, as the service does — and reports the learning thread's CPU µs per label
(``time.thread_time``: it survives a shared machine's noise better than wall time, and a
booster fit running on its own thread is not counted), over the labels after ``--warm``
(trees grow: the first labels are cheap), for the whole ``learn`` and for each model's own
share. The fits' own cost is the booster's (bench/champion.py times one).

Lineups: ``--lineups "stack_live,logreg,hat;stack_sampled,logreg,hat"`` (champion first);
``stack_sampled``: the stack whose forest learns every fraud and 10 % of legitimate labels.

Usage: ``python -m bench.learn_cost --cache /tmp/rgc [--source handbook] [--labels 20000]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.models import load_events
from models import evaluation, zoo
from models.pool import ModelPool

zoo.register_variant(
    "stack_sampled",
    "stack",
    description="stack whose forest learns every fraud and 10% of legitimate labels",
    forest_share=0.1,
)


def measure(lineup: list[str], args: argparse.Namespace) -> dict[str, float]:
    """CPU µs per label after the warm-up: ``learn`` as a whole and per model."""
    pool = ModelPool([zoo.ZOO[n] for n in lineup], champion=lineup[0])
    stored: dict[str, tuple[dict[str, float], dict[str, float], dict[str, dict[str, float]]]] = {}
    spent: dict[str, float] = defaultdict(float)
    learned = timed = 0
    wall = time.perf_counter()
    for event in load_events(args.source, args):
        if event.kind == "tx":
            x = evaluation.clean(event.features or {})
            scores = pool.score(x)
            parts = {s.name: s.parts for s in scores if s.parts is not None}
            stored[event.key] = (x, {s.name: s.score for s in scores}, parts)
            continue
        if event.key not in stored:
            continue
        x, scored, parts = stored.pop(event.key)
        if learned < args.warm:
            pool.learn(x, bool(event.label), scored, parts, at=event.time)
        else:
            _timed_learn(pool, x, bool(event.label), scored, parts, event.time, spent)
            timed += 1
        learned += 1
        if learned >= args.warm + args.labels:
            break
    spent["(wall s)"] = time.perf_counter() - wall
    return {k: v / timed * 1e6 if not k.startswith("(") else v for k, v in spent.items()}


def _timed_learn(
    pool: ModelPool,
    x: dict[str, float],
    label: bool,
    scored: dict[str, float],
    parts: dict[str, dict[str, float]],
    at: float,
    spent: dict[str, float],
) -> None:
    """``pool.learn`` timed as a whole, and each member's ``learn`` inside it."""
    originals = {}
    for name, member in pool.members.items():
        originals[name] = member.learn

        def timed(*a: object, _f=member.learn, _n=name, **k: object) -> None:  # type: ignore[no-untyped-def]
            started = time.thread_time()
            _f(*a, **k)
            spent[_n] += time.thread_time() - started

        member.learn = timed  # type: ignore[method-assign]
    started = time.thread_time()
    pool.learn(x, label, scored, parts, at=at)
    spent["learn (all)"] += time.thread_time() - started
    for name, member in pool.members.items():
        member.learn = originals[name]  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="handbook")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", default="")
    parser.add_argument("--warm", type=int, default=20_000)
    parser.add_argument("--labels", type=int, default=10_000)
    parser.add_argument("--lineups", default="stack_live,logreg,hat;stack_sampled,logreg,hat")
    args = parser.parse_args()
    print("## bench/learn_cost.py\n")
    print(f"`{args.source}` ({args.days} days, {args.cards} cards, seed {args.seed}): CPU µs per")
    print(f"label over labels {args.warm:,}–{args.warm + args.labels:,}\n")
    print("```")
    for text in args.lineups.split(";"):
        lineup = text.split(",")
        result = measure(lineup, args)
        wall = result.pop("(wall s)")
        total = result.pop("learn (all)")
        shares = "  ".join(f"{n} {result.get(n, 0.0):7.1f}" for n in lineup)
        print(f"{' + '.join(lineup):<28} learn {total:7.1f} µs/label   ({shares})  [{wall:.0f} s]")
    print("```")


if __name__ == "__main__":
    main()
