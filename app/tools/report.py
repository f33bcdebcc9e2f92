"""The demo's HTML report: matplotlib figures (PNG, embedded) and the numbers behind them.

Every figure is computed from the durable record (the learning log and the stored scores), so
the report can be checked against ``GET /v1/models``: the final rolling metrics of each model
are recomputed here over the same window of labels in the same learning order.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from models import metrics as model_metrics

FIGURES = (
    "rolling_quality",
    "score_distribution",
    "decisions_per_day",
    "decisions_by_layer",
    "latency",
    "adaptation",
)


@dataclass(frozen=True)
class LearnedLabel:
    event_time: datetime
    is_fraud: bool
    scores: dict[str, float]
    evaluate: bool


@dataclass(frozen=True)
class ScoredTx:
    event_time: datetime
    decision: str
    score: float
    truth: bool | None
    scenario: str | None
    layer: str = "model"  # who decided: model, warmup, rule, list


@dataclass
class ReportData:
    models: list[dict[str, Any]]
    learned: list[LearnedLabel]
    scored: list[ScoredTx]
    latencies_ms: list[float]
    window: int
    latency_rate: float | None = None  # the REST requests' fixed rate (open loop), per second
    summary: dict[str, Any] = field(default_factory=dict)
    promotions: list[dict[str, Any]] = field(default_factory=list)
    campaign_onset: datetime | None = None
    campaign_scenario: str | None = None


def latency_title(rate: float | None) -> str:
    """What the latencies are: the demo's summary line and the latency plot say the same."""
    if rate is None:
        return "REST latency (client side)"
    return f"REST latency at {rate:g} req/s (open loop)"


def latency_summary(latencies_ms: Sequence[float]) -> str:
    """``p50 … ms, p99 … ms`` (``no requests`` for none)."""
    if not latencies_ms:
        return "no requests"
    p50, p99 = np.percentile(np.asarray(latencies_ms, dtype=float), [50, 99])
    return f"p50 {p50:,.1f} ms, p99 {p99:,.1f} ms"


def final_metrics(data: ReportData) -> dict[str, dict[str, float | None]]:
    """Per model: ROC AUC and AP over its last ``window`` evaluated labels (as the pool does)."""
    out: dict[str, dict[str, float | None]] = {}
    for name in _model_names(data):
        y, s = _series(data.learned, name)
        y, s = y[-data.window :], s[-data.window :]
        out[name] = {
            "roc_auc": model_metrics.roc_auc(y, s),
            "average_precision": model_metrics.average_precision(y, s),
            "labels": float(len(y)),
        }
    return out


def rolling_curves(
    data: ReportData, window: int, points: int = 60
) -> dict[str, list[tuple[datetime, float, float]]]:
    """(event time, AP, ROC AUC) per model over a sliding window of labels in learning order."""
    curves: dict[str, list[tuple[datetime, float, float]]] = {}
    for name in _model_names(data):
        rows = [row for row in data.learned if row.evaluate and name in row.scores]
        ends = np.unique(np.linspace(min(window, len(rows)), len(rows), points).astype(int))
        curve = []
        for end in ends:
            chunk = rows[max(0, end - window) : end]
            y = np.array([r.is_fraud for r in chunk], dtype=bool)
            s = np.array([r.scores[name] for r in chunk], dtype=float)
            ap, auc = model_metrics.average_precision(y, s), model_metrics.roc_auc(y, s)
            if ap is not None and auc is not None and end > 0:
                curve.append((max(r.event_time for r in chunk), ap, auc))
        curves[name] = curve
    return curves


def time_to_recover(data: ReportData, fraction: float = 0.9) -> dict[str, Any]:
    """Days after the campaign onset until the champion's daily AP regains ``fraction`` of its
    pre-onset mean (ground truth of every scored transaction that day)."""
    onset = data.campaign_onset
    if onset is None:
        return {"onset": None, "recovered_after_days": None}
    daily = _daily_ap(data.scored)
    before = [ap for day, ap in daily if day < onset]
    if not before:
        return {"onset": onset.isoformat(), "recovered_after_days": None}
    target = fraction * float(np.mean(before))
    after = [(day, ap) for day, ap in daily if day >= onset]
    dip = min((ap for _, ap in after), default=None)
    for day, ap in after:
        if ap >= target and (day - onset) >= timedelta(days=1):
            days = (day - onset).total_seconds() / 86400
            return {
                "onset": onset.isoformat(),
                "recovered_after_days": round(days, 1),
                "target_ap": target,
                "lowest_ap": dip,
            }
    return {
        "onset": onset.isoformat(),
        "recovered_after_days": None,
        "target_ap": target,
        "lowest_ap": dip,
    }


def _daily_ap(scored: Sequence[ScoredTx]) -> list[tuple[datetime, float]]:
    by_day: dict[datetime, list[ScoredTx]] = defaultdict(list)
    for tx in scored:
        if tx.truth is not None:
            by_day[tx.event_time.replace(hour=0, minute=0, second=0, microsecond=0)].append(tx)
    out = []
    for day in sorted(by_day):
        y = np.array([t.truth for t in by_day[day]], dtype=bool)
        s = np.array([t.score for t in by_day[day]], dtype=float)
        ap = model_metrics.average_precision(y, s)
        if ap is not None:
            out.append((day, ap))
    return out


def _model_names(data: ReportData) -> list[str]:
    return [str(m["name"]) for m in data.models]


def _series(rows: Sequence[LearnedLabel], name: str) -> tuple[np.ndarray, np.ndarray]:
    picked = [r for r in rows if r.evaluate and name in r.scores]
    y = np.array([r.is_fraud for r in picked], dtype=bool)
    s = np.array([r.scores[name] for r in picked], dtype=float)
    return y, s


# ---- rendering --------------------------------------------------------------------------
def render(data: ReportData) -> str:
    """The whole report as one self-contained HTML page."""
    import matplotlib

    matplotlib.use("Agg")
    figures = {
        "rolling_quality": _plot_rolling(data),
        "score_distribution": _plot_scores(data),
        "decisions_per_day": _plot_decisions(data),
        "decisions_by_layer": _plot_layers(data),
        "latency": _plot_latency(data),
        "adaptation": _plot_adaptation(data),
    }
    recovery = time_to_recover(data)
    final = final_metrics(data)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>riverguard report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}img{max-width:100%}</style></head><body>",
        "<h1>riverguard demo report</h1>",
        _table(
            "Run summary",
            [[html.escape(str(k)), html.escape(str(v))] for k, v in data.summary.items()],
            ["", ""],
        ),
        _models_table(data.models, final),
        f"<h2>Campaign onset and adaptation</h2><p>{html.escape(_recovery_text(recovery))}</p>",
    ]
    for name, png in figures.items():
        parts.append(f"<h2>{name.replace('_', ' ').title()}</h2>")
        parts.append(f"<img id='fig-{name}' alt='{name}' src='data:image/png;base64,{png}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _recovery_text(recovery: dict[str, Any]) -> str:
    if recovery.get("onset") is None:
        return "No unseen campaign in this stream."
    days = recovery.get("recovered_after_days")
    if days is None:
        return f"Campaign onset {recovery['onset']}: the champion had not recovered by the end."
    return (
        f"Campaign onset {recovery['onset']}: the champion's daily average precision was back to "
        f"90% of its pre-onset level after {days} days (lowest {recovery.get('lowest_ap', 0):.3f})."
    )


def _models_table(models: list[dict[str, Any]], final: dict[str, dict[str, float | None]]) -> str:
    rows = []
    for m in models:
        metrics = m.get("metrics") or {}
        mine = final.get(str(m["name"]), {})
        rows.append(
            [
                html.escape(str(m["name"])),
                html.escape(str(m.get("role"))),
                html.escape(str(m.get("version"))),
                _fmt(metrics.get("roc_auc")),
                _fmt(mine.get("roc_auc")),
                _fmt(metrics.get("average_precision")),
                _fmt(mine.get("average_precision")),
                str(m.get("learned")),
            ]
        )
    head = [
        "model",
        "role",
        "version",
        "ROC AUC (service)",
        "ROC AUC (report)",
        "AP (service)",
        "AP (report)",
        "labels learned",
    ]
    return _table(
        "Models at the end of the run (GET /v1/models vs recomputed)", rows, head, "models"
    )


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{float(value):.6f}"


def _table(title: str, rows: list[list[str]], head: list[str], ident: str = "") -> str:
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<h2>{html.escape(title)}</h2><table id='{ident}'><tr>{header}</tr>{body}</table>"


def _num_date(moment: datetime) -> float:
    from matplotlib import dates

    return float(dates.date2num(moment))  # type: ignore[no-untyped-call]


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _plot_rolling(data: ReportData) -> str:
    import matplotlib.pyplot as plt

    fig, (ax_ap, ax_auc) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    window = max(50, min(data.window, max(50, len(data.learned) // 5)))
    for name, curve in rolling_curves(data, window).items():
        if curve:
            times, aps, aucs = zip(*curve, strict=True)
            ax_ap.plot(times, aps, label=name)
            ax_auc.plot(times, aucs, label=name)
    for ax, title in ((ax_ap, "average precision"), (ax_auc, "ROC AUC")):
        ax.set_ylabel(title)
        if data.campaign_onset:
            ax.axvline(
                _num_date(data.campaign_onset), color="red", linestyle="--", label="campaign onset"
            )
        ax.grid(alpha=0.3)
    ax_ap.set_title(f"Rolling quality over the last {window} labels (event time)")
    ax_ap.legend(loc="lower right")
    return _png(fig)


def _plot_scores(data: ReportData) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    bins = [i / 40 for i in range(41)]
    fraud = [t.score for t in data.scored if t.truth]
    legit = [t.score for t in data.scored if t.truth is False]
    ax.hist(legit, bins=bins, alpha=0.6, label=f"legitimate ({len(legit)})", density=True)
    ax.hist(fraud, bins=bins, alpha=0.6, label=f"fraud ({len(fraud)})", density=True)
    ax.set_yscale("log")
    ax.set_xlabel("champion score")
    ax.set_title("Score distribution by ground truth")
    ax.legend()
    return _png(fig)


def _plot_decisions(data: ReportData) -> str:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for tx in data.scored:
        counts[tx.event_time.strftime("%m-%d")][tx.decision] += 1
    return _stacked_days(counts, ("approve", "review", "decline"), "Decisions per day")


def _plot_layers(data: ReportData) -> str:
    """Per day, the review and decline decisions by the layer that made them, and the
    warm-up's approvals (a model not yet trusted)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for tx in data.scored:
        if tx.decision != "approve" or tx.layer == "warmup":
            counts[tx.event_time.strftime("%m-%d")][f"{tx.layer}: {tx.decision}"] += 1
    kinds = sorted({k for c in counts.values() for k in c})
    title = "Who decided: reviews and declines by layer, and warm-up approvals, per day"
    return _stacked_days(counts, kinds, title, legend_size=8)


def _stacked_days(
    counts: dict[str, Counter[str]], kinds: Sequence[str], title: str, legend_size: int = 10
) -> str:
    """Bars per day (symlog), one stacked segment per kind."""
    import matplotlib.pyplot as plt

    days = sorted(counts)
    fig, ax = plt.subplots(figsize=(10, 4))
    bottom = np.zeros(len(days))
    for kind in kinds:
        values = np.array([counts[d][kind] for d in days], dtype=float)
        ax.bar(days, values, bottom=bottom, label=kind)
        bottom += values
    ax.set_yscale("symlog")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=60)
    ax.legend(fontsize=legend_size)
    return _png(fig)


def _plot_latency(data: ReportData) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.5))
    if data.latencies_ms:
        values = np.array(data.latencies_ms)
        ax.hist(values, bins=60)
        for q, style in ((50, ":"), (99, "--")):
            at = float(np.percentile(values, q))
            ax.axvline(at, color="k", linestyle=style, label=f"p{q} {at:,.1f} ms")
        ax.legend()
    ax.set_xlabel("ms from each request's scheduled time to its response (client side)")
    ax.set_title(latency_title(data.latency_rate))
    return _png(fig)


def _plot_adaptation(data: ReportData) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.5))
    daily = _daily_ap(data.scored)
    if daily:
        days, aps = zip(*daily, strict=True)
        ax.plot(days, aps, marker="o", label="champion daily AP (ground truth)")
    if data.campaign_onset:
        ax.axvline(
            _num_date(data.campaign_onset), color="red", linestyle="--", label="campaign onset"
        )
    recovery = time_to_recover(data)
    if recovery.get("target_ap") is not None:
        ax.axhline(recovery["target_ap"], color="grey", linestyle=":", label="90% of pre-onset")
    ax.set_title("Adaptation to the unseen campaign")
    ax.legend()
    return _png(fig)
