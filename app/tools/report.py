"""The demo's HTML report: matplotlib figures (PNG, embedded) and the numbers behind them.

Every figure is computed from the durable record (the learning log and the stored scores), so
the report can be checked against ``GET /v1/models``: the final rolling metrics of each model
are recomputed here over the same window of labels in the same learning order.
"""

from __future__ import annotations

import html
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
    notes: list[str] = field(default_factory=list)  # what the summary's figures count
    promotions: list[dict[str, Any]] = field(default_factory=list)
    campaign_onset: datetime | None = None
    campaign_scenario: str | None = None
    compared: str | None = None  # the model the champion is compared with (drawn bold)
    budgets: dict[str, float] = field(default_factory=dict)  # decision -> share of traffic

    @property
    def rolling_window(self) -> int:
        """Labels per point of the rolling-quality plot: the service's window, or a fifth of
        the labels when there are fewer (a short run still shows a curve)."""
        return max(50, min(self.window, max(50, len(self.learned) // 5)))


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


#: Days in each window of the adaptation plot: a day of the demo holds too few frauds for its
#: average precision to mean much; two days hold about twice as many.
TRAILING_DAYS = 2


def time_to_recover(data: ReportData, fraction: float = 0.9) -> dict[str, Any]:
    """Days after the campaign onset until the champion's AP over a trailing window regains
    ``fraction`` of its pre-onset mean (ground truth of every scored transaction), with the
    frauds behind each figure and a bootstrap interval of the lowest point."""
    onset = data.campaign_onset
    if onset is None:
        return {"onset": None, "recovered_after_days": None}
    windows = trailing_ap(data.scored, TRAILING_DAYS)
    before = [w for w in windows if w[0] <= onset]
    out: dict[str, Any] = {"onset": onset.isoformat(), "recovered_after_days": None}
    if not before:
        return out
    after = [w for w in windows if w[0] > onset]
    out["target_ap"] = fraction * float(np.mean([w[1] for w in before]))
    out["before_frauds"] = int(np.mean([w[4] for w in before]))
    if after:
        dip = min(after, key=lambda w: w[1])
        out.update(lowest_ap=dip[1], lowest_interval=(dip[2], dip[3]), lowest_frauds=dip[4])
    for end, ap, _, _, _ in after:
        if ap >= out["target_ap"] and (end - onset) >= timedelta(days=1):
            out["recovered_after_days"] = round((end - onset).total_seconds() / 86400, 1)
            break
    return out


def trailing_ap(
    scored: Sequence[ScoredTx], days: int, reps: int = 100, seed: int = 7
) -> list[tuple[datetime, float, float, float, int]]:
    """(window end, AP, 5th and 95th bootstrap percentiles, frauds) of the champion's scores
    over each ``days``-day window ending at a midnight, one window per day."""
    known = sorted((t for t in scored if t.truth is not None), key=lambda t: t.event_time)
    if not known:
        return []
    times = np.array([t.event_time.timestamp() for t in known])
    y = np.array([bool(t.truth) for t in known])
    s = np.array([t.score for t in known], dtype=float)
    first = known[0].event_time.replace(hour=0, minute=0, second=0, microsecond=0)
    rng = np.random.default_rng(seed)
    out = []
    end = first + timedelta(days=days)
    while end <= known[-1].event_time + timedelta(days=1):
        lo, hi = np.searchsorted(times, [(end - timedelta(days=days)).timestamp(), end.timestamp()])
        ap = model_metrics.average_precision(y[lo:hi], s[lo:hi])
        if ap is not None:
            low, high = _bootstrap(y[lo:hi], s[lo:hi], reps, rng)
            out.append((end, ap, low, high, int(y[lo:hi].sum())))
        end += timedelta(days=1)
    return out


def _bootstrap(
    y: np.ndarray, s: np.ndarray, reps: int, rng: np.random.Generator
) -> tuple[float, float]:
    values = []
    for _ in range(reps):
        pick = rng.integers(0, len(y), len(y))
        ap = model_metrics.average_precision(y[pick], s[pick])
        if ap is not None:
            values.append(ap)
    if not values:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [5, 95])
    return float(low), float(high)


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

    from app.tools import report_plots as plots

    matplotlib.use("Agg")
    recovery = time_to_recover(data)
    figures = {
        "rolling_quality": plots.rolling(data, rolling_curves(data, data.rolling_window)),
        "score_distribution": plots.scores(data),
        "decisions_per_day": plots.decisions(data),
        "decisions_by_layer": plots.layers(data),
        "latency": plots.latency(data, latency_title(data.latency_rate)),
        "adaptation": plots.adaptation(
            data, trailing_ap(data.scored, TRAILING_DAYS), recovery.get("target_ap"),
            TRAILING_DAYS,
        ),
    }  # fmt: skip
    final = final_metrics(data)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>riverguard report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}td:first-child{text-align:left}img{max-width:100%}</style>"
        "</head><body>",
        "<h1>riverguard demo report</h1>",
        _table(
            "Run summary",
            [[html.escape(str(k)), html.escape(str(v))] for k, v in data.summary.items()],
            ["measure", "value"],
        ),
        "".join(f"<p class='note'>{html.escape(note)}</p>" for note in data.notes),
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
    onset = str(recovery["onset"])[:16].replace("T", " ")
    if recovery.get("target_ap") is None:
        return f"Campaign onset {onset}: too few labelled days before it to compare."
    text = (
        f"Campaign onset {onset}. Before it, the champion's average precision over {TRAILING_DAYS}"
        f"-day windows (about {recovery['before_frauds']:,} frauds each) averaged "
        f"{recovery['target_ap'] / 0.9:.3f}."
    )
    if recovery.get("lowest_ap") is not None:
        low, high = recovery["lowest_interval"]
        text += (
            f" The lowest window after it: {recovery['lowest_ap']:.3f} "
            f"({recovery['lowest_frauds']:,} frauds; 90% bootstrap interval {low:.3f}–{high:.3f})."
        )
    days = recovery.get("recovered_after_days")
    if days is None:
        return text + " It had not regained 90% of the pre-onset level by the end of the run."
    return text + f" It was back to 90% of the pre-onset level {days} days after the onset."


def definition_of(model: dict[str, Any]) -> str:
    """A model's definition version (``v3``) from its version ``3.20955`` (definition, then
    labels learned), so the table does not show a number that looks like a decimal.

    >>> definition_of({"version": "3.20955"}), definition_of({"version": None})
    ('v3', '–')
    """
    version = model.get("version")
    if version is None:
        return "–"
    return f"v{str(version).rsplit('.', 1)[0]}"


def _models_table(models: list[dict[str, Any]], final: dict[str, dict[str, float | None]]) -> str:
    rows = []
    for m in models:
        metrics = m.get("metrics") or {}
        mine = final.get(str(m["name"]), {})
        learned = m.get("learned")
        rows.append(
            [
                html.escape(str(m["name"])),
                html.escape(str(m.get("role"))),
                html.escape(definition_of(m)),
                _fmt(metrics.get("roc_auc")),
                _fmt(mine.get("roc_auc")),
                _fmt(metrics.get("average_precision")),
                _fmt(mine.get("average_precision")),
                "–" if learned is None else f"{int(learned):,}",
            ]
        )
    head = [
        "model",
        "role",
        "definition",
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
