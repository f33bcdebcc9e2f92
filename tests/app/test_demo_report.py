"""The demo's report and summary from a synthetic run (no servers): every figure is drawn, the
numbers read as a person writes them, and the adaptation paragraph gives its evidence."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from app.tools import demo_decisions, demo_summary, report
from simulator import replay as sim_replay

START = datetime(2026, 1, 1, tzinfo=UTC)
ONSET = START + timedelta(days=7)


def synthetic(days: int = 14, per_day: int = 1500, seed: int = 3) -> report.ReportData:
    """A run whose champion separates fraud well, worse for two days after the onset."""
    rng = np.random.default_rng(seed)
    scored, learned = [], []
    for i in range(days * per_day):
        at = START + timedelta(seconds=i * 86400 / per_day)
        fraud = bool(rng.random() < 0.01)
        blur = 0.45 if ONSET <= at < ONSET + timedelta(days=2) else 0.2
        score = float(np.clip((0.7 if fraud else 0.05) + rng.normal(0, blur), 0, 1))
        layer = "warmup" if i < per_day else "model"
        decision = "approve"
        if layer == "model" and score > 0.6:
            decision = "decline" if score > 0.8 else "review"
        if i % 997 == 0:
            layer, decision = "rule", "review"
        scored.append(report.ScoredTx(at, decision, score, fraud, None, layer))
        if i % 2 == 0:
            other = float(np.clip(score + rng.normal(0, 0.1), 0, 1))
            learned.append(
                report.LearnedLabel(at, fraud, {"stack": score, "blend": other}, evaluate=True)
            )
    models = [
        {"name": "stack", "role": "champion", "version": "3.20955", "learned": 20955,
         "metrics": {"average_precision": 0.61, "roc_auc": 0.9, "window_labels": 10000}},
        {"name": "blend", "role": "challenger", "version": "3.20955", "learned": 20955,
         "metrics": {"average_precision": 0.42, "roc_auc": 0.85, "window_labels": 10000}},
    ]  # fmt: skip
    return report.ReportData(
        models=models,
        learned=learned,
        scored=scored,
        latencies_ms=list(rng.gamma(2, 5, 3000)),
        window=10_000,
        latency_rate=200,
        campaign_onset=ONSET,
        compared="blend",
        budgets={"review": 0.02, "decline": 0.005},
        summary={"transactions scored": "21,000"},
    )


def test_the_report_draws_every_figure_and_formats_its_numbers(tmp_path: Path) -> None:
    data = synthetic()
    page = report.render(data)
    (tmp_path / "report.html").write_text(page)
    for figure in report.FIGURES:
        assert re.search(rf"id='fig-{figure}' alt='{figure}' src='data:image/png;base64,", page)
    models = page.split("id='models'", 1)[1].split("</table>", 1)[0]
    assert "<td>v3</td>" in models and "3.20955" not in models
    assert "<td>20,955</td>" in models
    paragraph = page.split("Campaign onset and adaptation</h2><p>", 1)[1].split("</p>", 1)[0]
    assert re.search(r"about [\d,]+ frauds each", paragraph), paragraph
    assert re.search(r"90% bootstrap interval 0\.\d{3}–0\.\d{3}", paragraph), paragraph


def test_trailing_windows_count_their_frauds_and_bracket_their_ap() -> None:
    windows = report.trailing_ap(synthetic().scored, days=2)
    assert len(windows) == 13  # one per day once two days are in
    for _end, ap, low, high, frauds in windows:
        assert frauds > 0
        assert low <= ap + 0.05 and ap - 0.05 <= high
    recovery = report.time_to_recover(synthetic())
    assert recovery["lowest_ap"] < recovery["target_ap"]  # the blurred days show
    assert recovery["recovered_after_days"] is not None


def test_summary_values_are_short_text_and_notes_say_what_they_count() -> None:
    data = synthetic()
    replayed = sim_replay.ReplaySummary(latencies_ms=[3.0, 4.0, 50.0])
    replayed.by_sink["http"] = Counter(accepted=12_345)
    replayed.outcomes["transaction"]["accepted"] = 21_000
    cpu = demo_summary.CpuUse(scorer_s=42.0, learner_s=30.0, transactions=21_000, labels=10_500)
    bundles = {
        "loads": 40.0,
        "mean_delay_s": 1.25,
        "loaded_seq": 10_300.0,
        "learner_head": 10_400.0,
    }
    run = demo_summary.Run(90.0, replayed, cpu, compared="blend", bundles=bundles)
    statuses = {"learned": 10_400, "duplicate": 100}
    lines, notes = demo_summary.lines(data, run, [], _setup(), statuses, 0)
    assert all(isinstance(v, str) and "{" not in v and len(v) <= 40 for v in lines.values())
    assert lines["transactions scored"] == "21,000"
    assert lines["labels stored"] == "10,500" and lines["labels learned"] == "10,400"
    assert lines["REST requests answered"] == "12,345"
    assert lines["approved / reviewed / declined"].count(" / ") == 2
    assert lines["scorer CPU per transaction"] == "2.00 ms"
    assert lines["learner CPU per label"] == "2.86 ms"
    assert lines["AP, champion stack vs blend"] == "0.610 vs 0.420"
    assert any(n.startswith("100 labels not learned: 100 duplicate (the same label") for n in notes)
    assert any("the scorer 42.0 s for 21,000 transactions" in n for n in notes), notes
    assert lines["scorer bundle loads"] == "40, 1.2 s after publication"
    assert any("position 10,300, the learner at 10,400" in n for n in notes), notes


def test_the_champion_is_compared_with_the_strongest_other_once_it_is_the_baseline() -> None:
    models = [
        {"name": "blend", "role": "champion", "metrics": {"average_precision": 0.5}},
        {"name": "logreg", "role": "challenger", "metrics": {"average_precision": 0.3}},
        {"name": "stack", "role": "challenger", "metrics": {"average_precision": 0.6}},
    ]
    assert demo_summary.head_to_head(models, "stack") == (
        "AP, champion blend vs stack",
        "0.500 vs 0.600",
    )
    assert demo_summary.head_to_head(models, "blend") == (
        "AP, champion blend vs stack",
        "0.500 vs 0.600",
    )


def _setup() -> demo_decisions.Setup:
    return demo_decisions.Setup('amount > 1000.00 && channel == "ecom"', "card_1")
