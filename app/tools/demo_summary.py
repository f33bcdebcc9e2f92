"""The demo's summary lines: what a newcomer reads first, formatted once for the console and
the report (thousands separated, no raw Python values).

>>> number(48831), number(2.25), number({"approve": 48100, "review": 731})
('48,831', '2.2', 'approve 48,100 · review 731')
>>> label_outcomes({"learned": 20955, "duplicate": 150})
('20,955', '150 labels not learned: 150 duplicate (the same label delivered twice: ...')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.tools import demo_decisions, demo_pace, report
from simulator import replay as sim_replay

#: Why a stored label's status is not "learned" (the learner's settlement rules).
WHY_NOT_LEARNED = {
    "duplicate": "the same label delivered twice: a REST request retried after a client "
    "timeout the service had in fact served, or a Kafka record redelivered; learned once",
    "parked": "their transaction has not arrived: parked until it does",
    "superseded": "a newer label for the same transaction arrived while both were parked",
    "expired": "parked longer than the parked-label TTL",
    "received": "not yet settled by the learner when the demo stopped waiting for it",
}


def number(value: Any) -> str:
    """A summary value as text: ints with thousands separators, floats to one decimal."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, Mapping):
        return " · ".join(f"{k} {number(v)}" for k, v in value.items())
    return str(value)


def label_outcomes(statuses: Mapping[str, int]) -> tuple[str, str | None]:
    """Labels learned (relabeled ones included), and a note on the others and why."""
    learned = statuses.get("learned", 0) + statuses.get("relabeled", 0)
    others = {s: n for s, n in sorted(statuses.items()) if s not in ("learned", "relabeled")}
    if not others:
        return f"{learned:,}", None
    reasons = "; ".join(
        f"{n:,} {status} ({WHY_NOT_LEARNED.get(status, 'see the labels table')})"
        for status, n in others.items()
    )
    return f"{learned:,}", f"{sum(others.values()):,} labels not learned: {reasons}."


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds each process used from the start of the replay until the stream was
    stored and learned, and what they handled meanwhile."""

    scorer_s: float | None
    learner_s: float | None
    transactions: int
    labels: int

    def lines(self) -> dict[str, str]:
        """Short summary lines: CPU milliseconds per transaction (scorer), per label (learner)."""
        out = {}
        if self.scorer_s is not None and self.transactions:
            out["scorer CPU per transaction"] = f"{1000 * self.scorer_s / self.transactions:.2f} ms"
        if self.learner_s is not None and self.labels:
            out["learner CPU per label"] = f"{1000 * self.learner_s / self.labels:.2f} ms"
        return out

    def note(self) -> str | None:
        """What the CPU figures count, for the notes under the summary."""
        if self.scorer_s is None or self.learner_s is None:
            return None
        return (
            f"CPU from the start of the replay until every transaction was stored and every "
            f"label learned: the scorer {self.scorer_s:,.1f} s for {self.transactions:,} "
            f"transactions (REST and Kafka alike, its intake of the labels included), the "
            f"learner {self.learner_s:,.1f} s for {self.labels:,} labels (and its bundles)."
        )


def cpu_between(
    before: Mapping[str, float | None], after: Mapping[str, float | None], role: str
) -> float | None:
    start, end = before.get(role), after.get(role)
    return None if start is None or end is None else end - start


def head_to_head(models: Sequence[Mapping[str, Any]], compared: str) -> tuple[str, str] | None:
    """(title, value): the champion's rolling AP beside ``compared``'s, on the same labels."""
    champion = next((m for m in models if m.get("role") == "champion"), None)
    if champion is None:
        return None
    other = compared
    if champion["name"] == compared:  # promoted meanwhile: compare with the strongest other
        rest = [m for m in models if m is not champion]
        if not rest:
            return None
        other = str(max(rest, key=lambda m: _ap(m) or 0.0)["name"])
    rival = next((m for m in models if m["name"] == other), None)
    if rival is None:
        return None
    title = f"AP, champion {champion['name']} vs {other}"
    return title, f"{_ap_text(champion)} vs {_ap_text(rival)}"


def _ap(model: Mapping[str, Any]) -> float | None:
    value = (model.get("metrics") or {}).get("average_precision")
    return None if value is None else float(value)


def _ap_text(model: Mapping[str, Any]) -> str:
    value = _ap(model)
    return "–" if value is None else f"{value:.3f}"


@dataclass(frozen=True)
class Run:
    """What the replay measured, beside the service's own record."""

    elapsed_s: float
    replayed: sim_replay.ReplaySummary
    cpu: CpuUse
    compared: str  # the model the champion is compared with
    bundles: Mapping[str, float] = field(default_factory=dict)  # DemoService.freshness()
    hold: demo_pace.Hold | None = None  # how the replay waited for the scorer's models


def lines(
    data: report.ReportData,
    measured: Run,
    scored_rows: list[Any],
    setup: demo_decisions.Setup,
    statuses: dict[str, int],
    dead: int,
) -> tuple[dict[str, str], list[str]]:
    """The run in short lines, every value already text (the console and the report agree),
    and the notes that explain them."""
    replayed, scored = measured.replayed, data.scored
    rest = replayed.by_sink.get("http", Counter[str]())
    learned, not_learned = label_outcomes(statuses)
    out: dict[str, Any] = {
        "layout": "learner + scorer: 2 processes",
        "transactions scored": len(scored),
        "labels stored": sum(statuses.values()),
        "labels learned": learned,
        "wall time (s)": round(measured.elapsed_s, 1),
        "throughput (tx/s)": round(len(scored) / max(measured.elapsed_s, 1e-6), 1),
        # measured from each request's scheduled time, so queueing behind a slow one counts
        report.latency_title(data.latency_rate): report.latency_summary(replayed.latencies_ms),
        "REST requests answered": rest.get("accepted", 0) + rest.get("rejected", 0),
        **measured.cpu.lines(),
    }
    notes = [n for n in (not_learned, measured.cpu.note()) if n]
    bundles = measured.bundles
    if bundles.get("loads"):
        out["scorer bundle loads"] = (
            f"{bundles['loads']:,.0f}, {bundles['mean_delay_s']:.1f} s after publication"
        )
        notes.append(
            f"The scorer scores with the learner's bundles: it ended on the bundle at "
            f"learning-log position {bundles['loaded_seq']:,.0f}, the learner at "
            f"{bundles['learner_head']:,.0f}."
        )
    hold = measured.hold
    if hold is not None:
        out["replay held for the models"] = f"{hold.holds:,} times, {hold.held_s:,.1f} s"
        notes.append(
            f"The replay waits while the scorer's models miss more than {hold.slack:,} of the "
            f"labels it took in (the most seen: {hold.worst:,}): two weeks pass in minutes "
            "here, faster than one learner learns, and models days behind would be judged "
            "on traffic they could not have learned from."
            + (" It stopped waiting: the lag did not shrink for a minute." if hold.stalled else "")
        )
    compared = head_to_head(data.models, measured.compared)
    if compared is not None:
        out[compared[0]] = compared[1]
        window = data.models[0].get("metrics", {}).get("window_labels") if data.models else None
        if window:
            notes.append(f"AP: average precision over the same last {window:,} labels learned.")
    decided = Counter(s.decision for s in scored)
    out.update(
        {
            "approved / reviewed / declined": " / ".join(
                f"{decided[d]:,}" for d in ("approve", "review", "decline")
            ),
            **demo_decisions.summary(scored_rows, setup),
            "promotions": len(data.promotions),
            "dead letters": dead,
            "rejected by the API": replayed.total("rejected"),
            "generated at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    return {key: number(value) for key, value in out.items()}, notes
