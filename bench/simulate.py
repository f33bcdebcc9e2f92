"""Benchmark stream generation to a JSONL file, beside writing pre-built lines.

The baseline writes the same number of ready-made JSON lines (no simulation) to the same
kind of file, so the table shows what the simulation itself costs on this machine.

Run ``python -m bench.simulate --help``. Generation is seeded; only the timings vary.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

from simulator.generate import SimConfig, simulate
from simulator.jsonl import write_jsonl


def _generate(config: SimConfig, path: Path) -> tuple[int, float, float]:
    """Events written, seconds to draw the arrays, seconds in total (draw + build + write)."""
    started = time.perf_counter()
    stream = simulate(config)
    drawn = time.perf_counter()
    events = write_jsonl(stream, path)
    return events, drawn - started, time.perf_counter() - started


def _baseline(sample: list[str], events: int, path: Path) -> float:
    """Seconds to write ``events`` pre-built lines (cycling through ``sample``)."""
    started = time.perf_counter()
    lines = itertools.islice(itertools.cycle(sample), events)
    with open(path, "w", encoding="utf-8") as handle:
        while chunk := list(itertools.islice(lines, 2048)):
            handle.write("".join(chunk))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=5000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    config = SimConfig(cards=args.cards, days=args.days, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        out, base = Path(tmp) / "stream.jsonl", Path(tmp) / "baseline.jsonl"
        runs = [_generate(config, out) for _ in range(args.repeat)]
        events = runs[0][0]
        draw = min(run[1] for run in runs)
        total = min(run[2] for run in runs)
        with open(out, encoding="utf-8") as handle:
            sample = list(itertools.islice(handle, 10_000))
        baseline = min(_baseline(sample, events, base) for _ in range(args.repeat))
    rows = [
        ("generate to file (draw + build + write)", total),
        ("  of which: draw arrays (numpy)", draw),
        ("baseline: write pre-built lines", baseline),
    ]
    print(f"cards={args.cards} days={args.days:g} seed={args.seed}, best of {args.repeat}\n")
    print("| step | events | seconds | events/s |")
    print("|---|---:|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {events:,} | {seconds:.2f} | {events / seconds:,.0f} |")


if __name__ == "__main__":
    main()
