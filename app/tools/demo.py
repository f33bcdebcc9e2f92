"""``riverguard demo``: a simulated stream through the real service, a live view, a report.

The service runs in the layout users deploy, against the embedded servers or configured URLs:
a learner process beside a scorer process (``RIVERGUARD_ROLE=scorer riverguard serve``: the API
and the stream workers). This process generates the stream, replays most of it through Kafka
and a share through the scorer's REST API at a fixed rate (labels arrive late, in event-time
order), shows progress from the service's own metrics, then writes ``riverguard-report.html``
with the REST latency beside what each transaction cost the scorer in CPU. The replay is held
back while the scorer's models lag the labels it took in (:mod:`app.tools.demo_pace`): days of
event time pass in seconds here, and a model days behind would be judged unfairly.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from app.tools import demo_decisions, demo_pace, demo_summary, report
from app.tools.demo_service import DemoService, lineup
from simulator import generate as sim
from simulator import replay as sim_replay
from simulator import sinks
from simulator.records import Record


@dataclass(frozen=True)
class DemoOptions:
    days: float = 14.0
    cards: int = 2200
    seed: int = 7
    http_share: float = 0.2
    http_rate: float = 200.0  # REST requests per second, open loop
    out: Path = Path("riverguard-report.html")
    live: bool = True
    #: labels taken in the scorer's models may miss before the replay waits (None: never)
    slack: int | None = demo_pace.Hold.slack


@dataclass
class Progress:
    started: float = field(default_factory=time.monotonic)
    scored: float = 0.0
    received: float = 0.0  # labels taken in by the scorer
    learned: float = 0.0
    models: list[dict[str, Any]] = field(default_factory=list)


# REST senders, and the HTTP client's connections: at most this many requests in flight, so the
# client never queues requests for a connection (httpx's pool grows slow with a long queue)
HTTP_SENDERS = 32


async def run(service: DemoService, options: DemoOptions, console: Console) -> dict[str, Any]:
    config = sim.SimConfig(days=options.days, cards=options.cards, seed=options.seed)
    stream = sim.simulate(config)
    records = list(stream)
    console.print(
        f"generated {stream.summary.transactions:,} transactions, "
        f"{sum(stream.summary.labels.values()):,} labels over {options.days:g} days "
        f"(fraud rate {stream.summary.fraud_rate:.2%}, unseen campaign from "
        f"{stream.summary.campaign_onset})"
    )
    champion, compared, challengers = lineup()
    console.print(
        f"layout: a learner (pid {service.learner.pid}) beside a scorer (pid "
        f"{service.scorer.pid}, RIVERGUARD_ROLE=scorer: API + Kafka workers); champion "
        f"{champion}, challengers {', '.join(challengers)}"
    )
    setup = demo_decisions.choose(records)
    await demo_decisions.install(service.url, service.api_key, setup)
    console.print(
        f"decision layer: budgets {demo_decisions.REVIEW_BUDGET:.1%} review, "
        f"{demo_decisions.DECLINE_BUDGET:.1%} decline; rule {demo_decisions.RULE_ID} "
        f"({setup.rule_expression}); card {setup.blocked_card} block-listed"
    )
    started, cpu_before = time.monotonic(), service.cpu_seconds()
    hold = None if options.slack is None else demo_pace.Hold(service.unlearned, options.slack)
    replayed = await _replay(service, records, stream.summary.transactions, options, console, hold)
    expected_tx = replayed.outcomes["transaction"]["accepted"]
    expected_labels = replayed.outcomes["label"]["accepted"]
    await _drain(service, expected_tx, expected_labels, console)
    elapsed, cpu_after = time.monotonic() - started, service.cpu_seconds()
    stored = await service.counts()
    cpu = demo_summary.CpuUse(
        demo_summary.cpu_between(cpu_before, cpu_after, "scorer"),
        demo_summary.cpu_between(cpu_before, cpu_after, "learner"),
        expected_tx,
        stored["labels"] - stored["unsettled"],  # what the learner settled meanwhile
    )
    measured = demo_summary.Run(elapsed, replayed, cpu, compared, await service.freshness(), hold)
    data = await _report_data(service, records, options.http_rate, stream.summary, measured, setup)
    options.out.write_text(report.render(data), encoding="utf-8")
    _print_summary(console, data, options.out)
    return {"summary": data.summary, "models": data.models, "report": str(options.out)}


async def _replay(
    service: DemoService,
    records: list[Record],
    total: int,
    options: DemoOptions,
    console: Console,
    hold: demo_pace.Hold | None = None,
) -> sim_replay.ReplaySummary:
    """Most of the stream through Kafka, a share through REST at a fixed rate, watched (and
    held back while the scorer's models lag the labels: ``hold``)."""
    http = sinks.HttpSink(service.url, service.api_key, timeout=30, max_connections=HTTP_SENDERS)
    kafka = sinks.KafkaSink(
        service.bootstrap, transactions_topic="transactions", labels_topic="labels"
    )
    split = sim_replay.Split(http, options.http_share, rate=options.http_rate, senders=HTTP_SENDERS)
    async with kafka, http:
        replaying = asyncio.create_task(
            sim_replay.replay(records, kafka, split=split, concurrency=64, hold=hold)
        )
        try:
            await _watch(service, replaying, total, options, console)
            return await replaying
        finally:
            if not replaying.done():  # interrupted: stop the replay before closing its sinks
                replaying.cancel()
                await asyncio.gather(replaying, return_exceptions=True)


async def _watch(
    service: DemoService,
    replaying: asyncio.Task[Any],
    total: int,
    options: DemoOptions,
    console: Console,
) -> Progress:
    progress = Progress()
    with Live(_progress_table(progress, total), console=console, refresh_per_second=4,
              transient=False) as live:  # fmt: skip
        while not replaying.done():
            await asyncio.wait([replaying], timeout=0.5)
            await _poll(service, progress)
            if options.live:
                live.update(_progress_table(progress, total))
        await _poll(service, progress)
        live.update(_progress_table(progress, total))
    return progress


async def _poll(service: DemoService, progress: Progress) -> None:
    try:
        samples = await service.samples()
        progress.scored = sum(
            v for k, v in samples.items() if k.startswith(("scored:", "replayed:"))
        )
        progress.received = samples.get("labels:arrived", 0.0)
        progress.learned = samples.get("labels:learned", 0.0) + samples.get("labels:relabeled", 0.0)
        progress.models = await service.models()
    except httpx.HTTPError:
        pass


def _progress_table(progress: Progress, total: int) -> Table:
    elapsed = max(time.monotonic() - progress.started, 1e-6)
    table = Table(title="riverguard demo", show_header=False)
    table.add_row("transactions scored (scorer)", f"{progress.scored:,.0f} / {total:,}")
    table.add_row("rate", f"{progress.scored / elapsed:,.0f} tx/s")
    table.add_row("labels arrived (scorer)", f"{progress.received:,.0f}")
    table.add_row("labels learned (learner)", f"{progress.learned:,.0f}")
    for m in progress.models:
        ap = (m.get("metrics") or {}).get("average_precision")
        shown = "–" if ap is None else f"{ap:.3f}"
        table.add_row(f"{m['role']} {m['name']} AP", shown)
    return table


async def _drain(service: DemoService, transactions: int, labels: int, console: Console) -> None:
    """Wait until the scorer has recorded every accepted transaction and label, and the
    learner has settled and learned every label (a settled label is logged first, then
    learned: its models and metrics are read after); give up only once nothing has moved for
    a minute (a slow machine is waited for, a stuck service is not)."""
    stall, counts = 60.0, await _drain_counts(service)
    moved = time.monotonic()
    while (
        counts["transactions"] < transactions
        or counts["labels"] < labels
        or counts["unsettled"] > 0
        or counts["learned"] < counts["logged"]
    ):
        if time.monotonic() - moved > stall:
            console.print(f"[yellow]warning:[/] service stalled for {stall:.0f} s: {counts}")
            return
        await asyncio.sleep(0.5)
        latest = await _drain_counts(service)
        if latest != counts:
            counts, moved = latest, time.monotonic()


async def _drain_counts(service: DemoService) -> dict[str, int]:
    counts = await service.counts()
    counts["learned"] = max(int((await service.freshness())["learner_head"]), 0)
    return counts


async def _report_data(
    service: DemoService,
    records: list[Record],
    http_rate: float,
    summary: sim.GenerationSummary,
    measured: demo_summary.Run,
    setup: demo_decisions.Setup,
) -> report.ReportData:
    truth = {r.transaction_id: r.truth for r in records if r.kind == "transaction"}
    models = await service.models()
    conn = await asyncpg.connect(service.database_url)
    try:
        learned_rows = await conn.fetch(
            "SELECT g.is_fraud, g.evaluate, t.event_time, t.scores FROM learn_log g"
            " JOIN transactions t USING (transaction_id) ORDER BY g.seq"
        )
        scored_rows = await conn.fetch(
            "SELECT transaction_id, event_time, decision, score, decided, reasons"
            " FROM scored_transactions"
        )
        promotions = [
            json.loads(r["record"]) for r in await conn.fetch("SELECT record FROM promotions")
        ]
        statuses = {
            r["status"]: int(r["n"])
            for r in await conn.fetch("SELECT status, count(*) AS n FROM labels GROUP BY status")
        }
        dead = await service.dead_letters()
    finally:
        await conn.close()
    learned = [
        report.LearnedLabel(
            event_time=r["event_time"],
            is_fraud=r["is_fraud"],
            scores={s["name"]: float(s["score"]) for s in json.loads(r["scores"])},
            evaluate=r["evaluate"],
        )
        for r in learned_rows
    ]
    scored = []
    for r in scored_rows:
        t = truth.get(r["transaction_id"])
        fraud, scenario = (t.is_fraud, t.scenario) if t else (None, None)
        layer = demo_decisions.layer_of(r["decided"], r["reasons"])
        scored.append(
            report.ScoredTx(
                r["event_time"], r["decision"], float(r["score"]), fraud, scenario, layer
            )
        )
    window = int(models[0].get("metrics", {}).get("window", 10_000)) if models else 10_000
    data = report.ReportData(
        models=models,
        learned=learned,
        scored=scored,
        latencies_ms=measured.replayed.latencies_ms,
        latency_rate=http_rate,
        window=window,
        promotions=promotions,
        campaign_onset=summary.campaign_onset,
        compared=measured.compared,
        budgets={
            "review": demo_decisions.REVIEW_BUDGET,
            "decline": demo_decisions.DECLINE_BUDGET,
        },
    )
    data.summary, data.notes = demo_summary.lines(
        data, measured, scored_rows, setup, statuses, dead
    )
    return data


def _print_summary(console: Console, data: report.ReportData, out: Path) -> None:
    table = Table(title="riverguard demo — summary")
    table.add_column("measure", no_wrap=True)
    table.add_column("value", justify="right")
    for key, value in data.summary.items():
        table.add_row(key, value)
    console.print(table)
    for note in data.notes:
        console.print(f"  {note}", highlight=False)
    models = Table(title="models")
    for column in ("model", "role", "definition", "ROC AUC", "AP", "labels"):
        models.add_column(column, justify="right")
    for m in data.models:
        metrics = m.get("metrics") or {}
        models.add_row(
            str(m["name"]), str(m["role"]), report.definition_of(m),
            _num(metrics.get("roc_auc")), _num(metrics.get("average_precision")),
            demo_summary.number(m.get("learned")),
        )  # fmt: skip
    console.print(models)
    console.print(f"report written to [bold]{out}[/]")


def _num(value: Any) -> str:
    return "–" if value is None else f"{float(value):.3f}"
