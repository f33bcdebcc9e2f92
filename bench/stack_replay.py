"""Choose how the stack combines its members: record their scores once, replay combiners.

A stack's members learn every label whatever the meta-learner does, so the scores they give
at scoring time (the *parts* the pool stores) do not depend on how they are combined. This
records, once per stream, each member's parts for every transaction and the order labels
arrive in (``record``), then replays combination rules over the recording in seconds
(``combine``): the meta-learner as it is, fixed combinations, each member alone, and the
stack's shrinkage toward its prior. ``booster`` replays the windowed booster alone (the cheap
member: no forest) under other windows, legitimate shares and refit rules, and its parts
can replace the recorded ones.

Figures per rule: AP over the whole stream, the first 7 days and the last half, ROC AUC and
ECE over the last half.

Usage::

    python -m bench.stack_replay record --source handbook --cache /tmp/rgc --out /tmp/tr
    python -m bench.stack_replay booster --source handbook --cache /tmp/rgc --out /tmp/tr \\
        --configs "window_days=49,legit_share=0.1;window_days=28,legit_share=0.25"
    python -m bench.stack_replay combine --source handbook --out /tmp/tr
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.models import load_events
from models import evaluation, metrics, zoo
from models.pool import ModelPool
from models.stack import Stack
from models.stream import make_run

DAY = 86_400.0
#: (kind, rank, parts or label, time): the recorded stream
Trace = list[tuple[str, int, Any, float]]


def record(events: Iterable[evaluation.Event], spec: zoo.ModelSpec, member: str | None) -> Trace:
    """Replay ``spec`` prequentially; keep each transaction's parts and each label."""
    pool = ModelPool([spec], champion=spec.name)
    stored: dict[str, tuple[dict[str, float], int, Any]] = {}
    trace: Trace = []
    rank = 0
    for event in events:
        if event.kind == "tx" and event.key not in stored:
            x = evaluation.clean(event.features or {})
            given = pool.score(x)[0]
            parts = given.parts
            if member is not None:
                abstains = pool.members[spec.name].model.abstains()
                parts = {} if abstains else {member: given.score}
            stored[event.key] = (x, rank, given.parts)
            trace.append(("tx", rank, parts, event.time))
            rank += 1
        elif event.kind == "label" and event.key in stored:
            x, at, parts = stored.pop(event.key)
            label = bool(event.label)
            stored_parts = {spec.name: parts} if parts is not None else None
            pool.learn(x, label, {}, stored_parts, event.time)
            trace.append(("label", at, label, event.time))
    model = pool.members[spec.name].model
    for name, member in getattr(model, "members", {}).items():
        print(f"{name}: {len(pickle.dumps(member)) / 1e6:.2f} MB pickled at the end")
    print(f"{spec.name}: {len(pickle.dumps(model)) / 1e6:.2f} MB pickled at the end", flush=True)
    return trace


Combiner = tuple[Callable[[dict[str, float]], float], Callable[[dict[str, float], bool], None]]


def replay(trace: Trace, combiner: Combiner) -> evaluation.Run:
    combine, learn = combiner
    parts_of: dict[int, dict[str, float]] = {}
    scored: dict[int, float] = {}
    outcome: dict[int, tuple[bool, float]] = {}
    meta: dict[int, tuple[float, str]] = {}
    times: dict[int, float] = {}
    for kind, rank, value, t in trace:
        if kind == "tx":
            parts_of[rank] = value
            scored[rank] = combine(value)
            times[rank] = t
        else:
            outcome[rank] = (value, scored[rank])
            meta[rank] = (times[rank], "")
            learn(parts_of.pop(rank), value)
    return make_run("x", outcome, len(scored), len(trace), 1.0, meta)


def stack_combiner(names: list[str], **params: Any) -> Combiner:
    """A :class:`models.stack.Stack` over recorded parts (its members are never called)."""
    stack = Stack(dict.fromkeys(names), fraud_shares={"logreg": 0.1}, **params)
    return stack.combine, stack.learn_meta


def member_alone(name: str, names: list[str]) -> Combiner:
    """One member's prior-corrected score (0 when it abstains)."""
    stack = Stack(dict.fromkeys(names), fraud_shares={"logreg": 0.1})

    def combine(parts: dict[str, float]) -> float:
        if name not in parts:
            return 0.0
        z = stack.inputs(parts)[stack._names.index(name)]
        return float(1.0 / (1.0 + np.exp(-z)))

    return combine, stack.learn_meta


def describe(name: str, run: evaluation.Run) -> str:
    late = run.order >= run.transactions // 2
    assert run.times is not None
    early = run.times < run.times.min() + 7 * DAY
    ap = metrics.average_precision(run.labels, run.scores)
    ap7 = metrics.average_precision(run.labels[early], run.scores[early])
    ap2 = metrics.average_precision(run.labels[late], run.scores[late])
    auc2 = metrics.roc_auc(run.labels[late], run.scores[late])
    ece = metrics.expected_calibration_error(run.labels[late], run.scores[late])
    cells = [ap, ap7, ap2, auc2, ece]
    return f"{name:<44}" + " ".join(f"{c:8.4f}" if c is not None else "       -" for c in cells)


def _params(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        out[key] = None if value == "None" else float(value) if "." in value else int(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["record", "booster", "combine"])
    parser.add_argument("--source", default="handbook")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", default="")
    parser.add_argument("--out", default="/tmp/stack-traces")
    parser.add_argument("--model", default="stack")
    parser.add_argument("--configs", default="")
    parser.add_argument("--booster", default="", help="combine: use this booster trace")
    parser.add_argument("--rules", default="", help="combine: stack params, ';'-separated")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = f"{args.source}-{args.days}-{args.cards}-{args.seed}"
    if args.what == "record":
        trace = record(load_events(args.source, args), zoo.ZOO[args.model], None)
        (out / f"{base}-{args.model}.pkl").write_bytes(pickle.dumps(trace))
        return
    if args.what == "booster":
        events = load_events(args.source, args)
        for text in args.configs.split(";"):
            spec = zoo.register_variant(f"booster[{text}]", "booster", **_params(text))
            trace = record(events, spec, "booster")
            (out / f"{base}-booster[{text}].pkl").write_bytes(pickle.dumps(trace))
            print(describe(f"booster[{text}]", replay(trace, (lambda p: p["booster"], _no))))
        return
    trace = pickle.loads((out / f"{base}-{args.model}.pkl").read_bytes())
    if args.booster:
        trace = _swap_booster(trace, out / f"{base}-booster[{args.booster}].pkl")
    names = ["arf_bounded", "logreg", "booster"]
    print(f"{'rule':<44}{'AP':>8} {'AP 7d':>8} {'AP 2nd':>8} {'AUC 2nd':>8} {'ECE 2nd':>8}")
    for name in names:
        print(describe(f"{name} alone", replay(trace, member_alone(name, names))))
    for text in ["", *filter(None, args.rules.split(";"))]:
        print(describe(f"stack[{text}]", replay(trace, stack_combiner(names, **_params(text)))))


def _no(parts: dict[str, float], label: bool) -> None:
    return None


def _swap_booster(trace: Trace, path: Path) -> Trace:
    booster = {
        rank: parts for kind, rank, parts, _ in pickle.loads(path.read_bytes()) if kind == "tx"
    }
    out: Trace = []
    for kind, rank, value, t in trace:
        if kind == "tx":
            value = {k: v for k, v in value.items() if k != "booster"}
            p = booster[rank].get("booster")
            abstains = p is None
            if not abstains:
                value["booster"] = p
        out.append((kind, rank, value, t))
    return out


if __name__ == "__main__":
    main()
