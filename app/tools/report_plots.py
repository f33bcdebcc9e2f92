"""The report's figures (matplotlib, PNG as base64), drawn to be read at a glance: shares on
linear axes, small review and decline slices in panels of their own, legends beside the plot
rather than over the lines, and quality over windows that hold enough frauds to mean something.
"""

from __future__ import annotations

import base64
import io
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from app.tools.report import ReportData

# one colour per decision, everywhere
COLOURS = {"approve": "#9ecae1", "review": "#fd8d3c", "decline": "#d62728"}
LEGEND_BESIDE: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}
# the layer that decided, as a hatch over the decision's colour (the model's own are plain)
HATCHES = {"model": "", "rule": "//", "list": "xx"}


def _num_date(moment: datetime) -> float:
    from matplotlib import dates

    return float(dates.date2num(moment))  # type: ignore[no-untyped-call]


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _onset(ax: Any, data: ReportData, label: bool = True) -> None:
    if data.campaign_onset:
        ax.axvline(
            _num_date(data.campaign_onset),
            color="red",
            linestyle="--",
            label="campaign onset" if label else None,
        )


def rolling(data: ReportData, curves: dict[str, list[tuple[datetime, float, float]]]) -> str:
    """Rolling AP and ROC AUC per model; the champion and the model it is compared with bold."""
    import matplotlib.pyplot as plt

    fig, (ax_ap, ax_auc) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    champion = next((str(m["name"]) for m in data.models if m.get("role") == "champion"), None)
    for name, curve in curves.items():
        if not curve:
            continue
        times, aps, aucs = zip(*curve, strict=True)
        bold = name in (champion, data.compared)
        style = {"linewidth": 2.4 if bold else 1.0, "alpha": 1.0 if bold else 0.7}
        tag = " (champion)" if name == champion else ""
        ax_ap.plot(times, aps, label=f"{name}{tag}", **style)
        ax_auc.plot(times, aucs, **style)
    for ax, title in ((ax_ap, "average precision"), (ax_auc, "ROC AUC")):
        ax.set_ylabel(title)
        _onset(ax, data, label=ax is ax_ap)
        ax.grid(alpha=0.3)
    ax_ap.set_title(f"Rolling quality over the last {data.rolling_window:,} labels (event time)")
    ax_ap.legend(**LEGEND_BESIDE)
    return _png(fig)


def scores(data: ReportData) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.5))
    bins = [i / 40 for i in range(41)]
    fraud = [t.score for t in data.scored if t.truth]
    legit = [t.score for t in data.scored if t.truth is False]
    ax.hist(legit, bins=bins, alpha=0.6, label=f"legitimate ({len(legit):,})", density=True)
    ax.hist(fraud, bins=bins, alpha=0.6, label=f"fraud ({len(fraud):,})", density=True)
    ax.set_yscale("log")
    ax.set_xlabel("champion score")
    ax.set_ylabel("density (log)")
    ax.set_title("Score distribution by ground truth")
    ax.legend(**LEGEND_BESIDE)
    return _png(fig)


def _days(data: ReportData) -> tuple[list[str], Counter[str]]:
    totals: Counter[str] = Counter(tx.event_time.strftime("%m-%d") for tx in data.scored)
    return sorted(totals), totals


def decisions(data: ReportData) -> str:
    """Transactions per day, and the review and decline shares of each day against budget."""
    import matplotlib.pyplot as plt

    days, totals = _days(data)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for tx in data.scored:
        counts[tx.event_time.strftime("%m-%d")][tx.decision] += 1
    fig, (ax_n, ax_share) = plt.subplots(
        2, 1, figsize=(10, 5), sharex=True, gridspec_kw={"height_ratios": [1, 2]}
    )
    ax_n.bar(days, [totals[d] for d in days], color=COLOURS["approve"])
    ax_n.set_ylabel("transactions")
    ax_n.set_title("Decisions per day: volume (top), review and decline shares (bottom)")
    x = np.arange(len(days))
    for offset, decision in ((-0.2, "review"), (0.2, "decline")):
        shares = [100 * counts[d][decision] / max(totals[d], 1) for d in days]
        ax_share.bar(x + offset, shares, width=0.4, color=COLOURS[decision], label=decision)
        budget = data.budgets.get(decision)
        if budget is not None:
            ax_share.axhline(
                100 * budget, color=COLOURS[decision], linestyle=":",
                label=f"{decision} budget {budget:.1%}",
            )  # fmt: skip
    ax_share.set_ylabel("% of the day's transactions")
    ax_share.set_xticks(x, days, rotation=60)
    ax_share.grid(axis="y", alpha=0.3)
    ax_share.legend(**LEGEND_BESIDE)
    return _png(fig)


def layers(data: ReportData) -> str:
    """Who decided, as shares of each day: the warm-up (a model not yet trusted) on top, then
    the reviews and declines of each layer."""
    import matplotlib.pyplot as plt

    days, totals = _days(data)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for tx in data.scored:
        if tx.layer == "warmup" or tx.decision != "approve":
            counts[tx.event_time.strftime("%m-%d")][f"{tx.layer}: {tx.decision}"] += 1
    kinds = sorted(
        {k for c in counts.values() for k in c if not k.startswith("warmup")},
        key=lambda kind: (not kind.endswith("decline"), kind),  # declines at the bottom
    )
    fig, (ax_warm, ax_layers) = plt.subplots(
        2, 1, figsize=(10, 5), sharex=True, gridspec_kw={"height_ratios": [1, 2]}
    )
    warm = [
        100 * sum(n for k, n in counts[d].items() if k.startswith("warmup")) / max(totals[d], 1)
        for d in days
    ]
    ax_warm.bar(days, warm, color="#bbbbbb")
    ax_warm.set_ylim(0, 100)
    ax_warm.set_ylabel("% in warm-up")
    ax_warm.set_title("Who decided, per day: warm-up (top); reviews and declines by layer (bottom)")
    bottom = np.zeros(len(days))
    for kind in kinds:
        values = np.array([100 * counts[d][kind] / max(totals[d], 1) for d in days])
        layer, decision = kind.split(": ", 1)
        ax_layers.bar(
            days, values, bottom=bottom, label=kind, color=COLOURS.get(decision, "grey"),
            hatch=HATCHES.get(layer, ".."), edgecolor="white",
        )  # fmt: skip
        bottom += values
    ax_layers.set_ylabel("% of the day's transactions")
    ax_layers.tick_params(axis="x", rotation=60)
    ax_layers.grid(axis="y", alpha=0.3)
    if kinds:
        ax_layers.legend(**LEGEND_BESIDE)
    return _png(fig)


def latency(data: ReportData, title: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.5))
    if data.latencies_ms:
        values = np.array(data.latencies_ms)
        ax.hist(values, bins=60, color="#6baed6")
        for q, style in ((50, ":"), (99, "--")):
            at = float(np.percentile(values, q))
            ax.axvline(at, color="k", linestyle=style, label=f"p{q} {at:,.1f} ms")
        ax.legend(**LEGEND_BESIDE)
    ax.set_xlabel("ms from each request's scheduled time to its response (client side)")
    ax.set_ylabel("requests")
    ax.set_title(title)
    return _png(fig)


def adaptation(
    data: ReportData,
    windows: Sequence[tuple[datetime, float, float, float, int]],
    target: float | None,
    days: int,
) -> str:
    """The champion's AP over trailing windows, with a bootstrap band and each window's frauds."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.5))
    if windows:
        ends, aps, lows, highs, frauds = zip(*windows, strict=True)
        ax.fill_between(ends, lows, highs, alpha=0.25, label="90% bootstrap interval")
        ax.plot(ends, aps, marker="o", label=f"champion AP, trailing {days} days")
        for end, ap, n in zip(ends, aps, frauds, strict=True):
            ax.annotate(f"{n}", (end, ap), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=7)  # fmt: skip
    _onset(ax, data)
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", label="90% of pre-onset")
    ax.set_ylabel("average precision")
    ax.set_title(f"Adaptation to the unseen campaign (numbers: frauds in each {days}-day window)")
    ax.grid(alpha=0.3)
    ax.legend(**LEGEND_BESIDE)
    return _png(fig)
