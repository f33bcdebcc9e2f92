"""What the champion misses per fraud scenario, and what a group of features is worth.

Error analysis: one prequential replay (:mod:`models.evaluation`) of a model on a stream of
:mod:`bench.models`; every fraud of the last half gets its score's rank among that half's
transactions; per scenario (the simulator's ``tag``) the table gives how many there are,
the share caught in the riskiest 1 % (about the review budget), the median score, and the
medians of a few card features for the caught and the missed ones, to say *why*.

Ablation: ``--drop a,b`` removes features from every event before the replay, so the same
featurized stream (with the new features) gives the "without" figures.

Usage: ``python -m bench.feature_value --source simulator --days 60 --cards 1000 --cache
/tmp/rgc [--models stack] [--drop name,...] [--errors] [--first-days 30]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import models as bench_models
from models import evaluation, zoo

#: Features whose medians explain a miss (card history relative to the transaction).
WHY = (
    "amount",
    "card_amount_to_mean_30d",
    "card_amount_to_max_30d",
    "card_count_1d",
    "card_count_1d_to_usual_day",
    "card_first_time_merchant_30d",
    "card_seconds_since_merchant_30d",
    "card_distance_km_prev",
    "merchant_fraud_labels_arrived_7d",
)


def drop(events: Sequence[evaluation.Event], names: set[str]) -> list[evaluation.Event]:
    """The events without the features in ``names``."""
    if not names:
        return list(events)
    out = []
    for e in events:
        if e.features is not None:
            e = e._replace(features={k: v for k, v in e.features.items() if k not in names})
        out.append(e)
    return out


def errors(events: Sequence[evaluation.Event], spec: zoo.ModelSpec, top: float = 0.01) -> str:
    """Per-scenario catch rate of ``spec`` in the last half's riskiest ``top`` share."""
    txs = [e for e in events if e.kind == "tx"]
    run = evaluation.run_online(events, spec)
    table = evaluation.format_table([evaluation.row(run)])
    late = run.order >= run.transactions // 2
    order, labels, scores = run.order[late], run.labels[late], run.scores[late]
    cut = np.quantile(scores, 1 - top)
    lines = [f"{'scenario':>22} {'n':>5} {'caught':>7} {'med score':>9}  medians caught | missed"]
    # a fraud label on an untagged transaction: label noise (a disputed genuine payment)
    tags = np.array(
        [
            txs[i].tag or ("no scenario" if y else "legit")
            for i, y in zip(order, labels, strict=True)
        ]
    )
    for tag in sorted(set(tags[labels])):
        rows = np.flatnonzero(labels & (tags == tag))
        hit = scores[rows] >= cut
        why = []
        for name in WHY:
            vals = np.array([txs[order[r]].features.get(name, np.nan) for r in rows])  # type: ignore[union-attr]
            caught = np.median(vals[hit]) if hit.any() else np.nan
            missed = np.median(vals[~hit]) if (~hit).any() else np.nan
            why.append(f"{name}={caught:.3g}|{missed:.3g}")
        lines.append(
            f"{tag:>22} {len(rows):>5} {hit.mean():>7.2f} {np.median(scores[rows]):>9.3f}  "
            + " ".join(why)
        )
    legit = np.flatnonzero(~labels)
    why = [
        f"{n}={np.median([txs[order[r]].features.get(n, np.nan) for r in legit]):.3g}"  # type: ignore[union-attr]
        for n in WHY
    ]
    lines.append(f"{'legit':>22} {len(legit):>5} {'':>7} {'':>9}  " + " ".join(why))
    return table + "\n\n" + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="simulator")
    parser.add_argument("--models", default="stack")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--cards", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", default="")
    parser.add_argument("--drop", default="", help="comma-separated features to remove")
    parser.add_argument("--errors", action="store_true", help="per-scenario error analysis")
    parser.add_argument("--baseline", default="none")
    parser.add_argument(
        "--first-days", type=float, default=0.0, help="replay only the stream's first days"
    )
    args = parser.parse_args()
    events = drop(
        bench_models.load_events(args.source, args), set(filter(None, args.drop.split(",")))
    )
    if args.first_days:
        start = events[0].time
        events = [e for e in events if e.time < start + args.first_days * bench_models.DAY]
    specs = [zoo.ZOO[name] for name in args.models.split(",")]
    span = f"first {args.first_days:g} of " if args.first_days else ""
    print(
        f"### {args.source}, {span}{args.days} days, {args.cards} cards, drop={args.drop or '-'}\n"
    )
    if args.errors:
        print("```\n" + errors(events, specs[0]) + "\n```\n", flush=True)
        return
    rows = evaluation.evaluate(events, specs, baseline=args.baseline, members=True)
    print("```\n" + evaluation.format_table(rows) + "\n```\n", flush=True)


if __name__ == "__main__":
    main()
