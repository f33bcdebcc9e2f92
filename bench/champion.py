"""In-process scoring latency of champion + challengers, and learning while the booster fits.

Trains a pool (champion ``stack`` and the given challengers) prequentially on the first
``--labels`` labels of a featurized stream (``bench/models.py``'s cache), then:

* scores the next transactions with the whole pool and reports µs per transaction
  (median, p99, mean) and each model's share;
* measures learning and scoring latency while a windowed-booster fit runs on its background
  thread, beside the same calls with no fit running, and the duration of that fit when run
  synchronously: the fit must not stall the pool (LightGBM releases the GIL while fitting).

Usage: ``python -m bench.champion --cache /tmp/rgc [--source handbook] [--challengers logreg,hat]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.models import load_events
from models import evaluation, zoo
from models.booster import WindowedBooster
from models.pool import ModelPool


def _us(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    return (
        f"median {statistics.median(ordered) * 1e6:7.1f} µs, p99 {p99 * 1e6:7.1f} µs, "
        f"mean {statistics.fmean(ordered) * 1e6:7.1f} µs, max {ordered[-1] * 1e3:6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="handbook")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", default="")
    parser.add_argument("--labels", type=int, default=40_000)
    parser.add_argument("--challengers", default="logreg,hat")
    parser.add_argument("--probe", type=int, default=5_000)
    args = parser.parse_args()
    events = load_events(args.source, args)
    names = ["stack", *[n for n in args.challengers.split(",") if n]]
    pool = ModelPool([zoo.ZOO[n] for n in names], champion="stack")
    stored: dict[str, tuple[dict[str, float], dict[str, float], dict[str, dict[str, float]]]] = {}
    learned, probe = 0, []
    for event in events:
        if event.kind == "tx":
            if learned >= args.labels:
                probe.append(evaluation.clean(event.features or {}))
                if len(probe) >= args.probe:
                    break
                continue
            given = pool.score(event.features or {})
            scored = {s.name: s.score for s in given}
            parts = {s.name: s.parts for s in given if s.parts is not None}
            stored[event.key] = (evaluation.clean(event.features or {}), scored, parts)
        elif event.key in stored and learned < args.labels:
            x, scored, parts = stored.pop(event.key)
            pool.learn(x, bool(event.label), scored, parts, event.time)
            learned += 1
    stack = pool.members["stack"].model
    stack.wait()
    print("## bench/champion.py\n")
    print(f"Pool {names} after {learned} labels of `{args.source}` ({args.days} days, ")
    print(f"{args.cards} cards, seed {args.seed}); {len(probe)} transactions scored.\n")
    print("```")
    whole = []
    for x in probe:
        started = time.perf_counter()
        pool.score(x)
        whole.append(time.perf_counter() - started)
    print(f"{'pool.score (all models)':34} {_us(whole)}")
    for name in names:
        member = pool.members[name]
        samples = []
        for x in probe[:2000]:
            started = time.perf_counter()
            member.predict_with_parts(x)
            samples.append(time.perf_counter() - started)
        print(f"{name:34} {_us(samples)}")
    for part, model in stack.members.items():
        samples = []
        for x in probe[:2000]:
            started = time.perf_counter()
            model.predict_proba_one(x)
            samples.append(time.perf_counter() - started)
        print(f"{'  stack.' + part:34} {_us(samples)}")
    booster: WindowedBooster = stack.members["booster"]
    print(f"\nbooster window: {len(booster._rows)} rows; fits so far: {booster.fits}")
    started = time.perf_counter()
    booster._since_fit, saved = booster.refit_every, booster.publish_after
    booster.publish_after = 0
    booster._start()
    print(f"synchronous fit: {time.perf_counter() - started:.2f} s")
    booster.publish_after = saved

    def learn_and_score(n: int) -> tuple[list[float], list[float]]:
        learns, scores = [], []
        for x in probe[:n]:
            started = time.perf_counter()
            pool.score(x)
            scores.append(time.perf_counter() - started)
            started = time.perf_counter()
            for member in pool.members.values():
                if member.spec.name != "stack":
                    member.learn(x, False)
            stack.members["arf_bounded"].learn_one(x, False)
            stack.members["logreg"].learn_one(x, False)
            learns.append(time.perf_counter() - started)
        return learns, scores

    quiet_learn, quiet_score = learn_and_score(1000)
    booster._since_fit = booster.refit_every
    booster.publish_after = 10**9  # start a background fit, publish it only when told
    booster._start()
    fit = booster._fit
    assert fit is not None and fit.thread is not None
    busy_learn, busy_score, rounds = [], [], 0
    while fit.thread.is_alive() and rounds < 20:
        learns, scores = learn_and_score(250)
        busy_learn += learns
        busy_score += scores
        rounds += 1
    busy_calls = len(busy_score)
    fit.thread.join()
    booster.publish_after = saved
    print(f"{'score, no fit running':34} {_us(quiet_score)}")
    print(f"{'score, fit running':34} {_us(busy_score)}  ({busy_calls} calls during the fit)")
    print(f"{'learn, no fit running':34} {_us(quiet_learn)}")
    print(f"{'learn, fit running':34} {_us(busy_learn)}")
    print(f"threads alive now: {threading.active_count()}")
    print("```")


if __name__ == "__main__":
    main()
