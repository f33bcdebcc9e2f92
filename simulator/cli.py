"""``riverguard simulate`` (also ``python -m simulator``): generate and replay streams."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from simulator.config import DEFAULT_START, LabelConfig, SimConfig, default_phases
from simulator.generate import GenerationSummary, simulate
from simulator.jsonl import JsonlError, count_records, read_jsonl, write_jsonl
from simulator.records import Record
from simulator.replay import Pacing, ReplaySummary, Split, replay
from simulator.sinks import HttpSink, KafkaSink, Sink

app = typer.Typer(
    name="simulate",
    help="Generate simulated card transaction streams with fraud and delayed labels; replay them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


class Target(StrEnum):
    KAFKA = "kafka"
    HTTP = "http"
    SPLIT = "split"


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _parse_start(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("expected RFC 3339, e.g. 2026-01-01T00:00:00Z") from None
    if moment.tzinfo is None:
        raise typer.BadParameter("the start needs a UTC offset, e.g. 2026-01-01T00:00:00Z")
    return moment


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL file ('-' for stdout).")],
    days: Annotated[float, typer.Option(min=0.01, help="Length of the period in days.")] = 30.0,
    cards: Annotated[int, typer.Option(min=1, help="Number of cards.")] = 5000,
    merchants: Annotated[
        int | None, typer.Option(min=20, help="Merchants (default cards/5).")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed: same seed, same bytes.")] = 7,
    start: Annotated[
        str, typer.Option(help="Start of the period (RFC 3339).")
    ] = "2026-01-01T00:00:00Z",
    fraud_rate: Annotated[float, typer.Option(min=0.0, max=0.49, help="Share of fraud.")] = 0.01,
    onset: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Campaign onset (fraction of the period; 1 = none)."),
    ] = 0.5,
    campaign: Annotated[
        str, typer.Option(help="Scenario that first appears at the onset.")
    ] = "compromised_merchant",
    unreported: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of fraud never reported.")
    ] = 0.1,
    genuine_labels: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of undisputed transactions confirmed genuine."),
    ] = 1.0,
    truth_out: Annotated[
        Path | None, typer.Option(help="Also write each transaction's truth here.")
    ] = None,
    summary_out: Annotated[
        Path | None, typer.Option(help="Write the generation summary (JSON) here.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary table.")] = False,
) -> None:
    """Generate a stream of transactions and labels as JSON Lines."""
    try:
        config = SimConfig(
            seed=seed,
            start=_parse_start(start) if start else DEFAULT_START,
            days=days,
            cards=cards,
            merchants=merchants,
            fraud_rate=fraud_rate,
            phases=default_phases(None if onset >= 1.0 else onset, campaign),
            labels=LabelConfig(unreported_rate=unreported, genuine_share=genuine_labels),
        )
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    stream = simulate(config)
    try:
        with _output(out) as handle:
            write_jsonl(stream, handle, truth_out=truth_out)
        if summary_out is not None:
            summary_out.write_text(json.dumps(stream.summary.to_dict(), indent=2) + "\n")
    except OSError as exc:
        raise _fail(f"cannot write: {exc.strerror or exc} ({exc.filename or out})") from None
    if not quiet:
        _print_generation(stream.summary, out)


@contextlib.contextmanager
def _output(out: Path) -> Iterator[Any]:
    if str(out) == "-":
        yield sys.stdout
        return
    with open(out, "w", encoding="utf-8") as handle:
        yield handle


def _print_generation(summary: GenerationSummary, out: Path) -> None:
    data = summary.to_dict()
    table = Table(title=f"generated {out}", show_header=False)
    for key in ("start", "end", "transactions", "frauds", "fraud_rate", "campaign_onset"):
        table.add_row(key, str(data[key]))
    for name, count in summary.by_scenario.items():
        table.add_row(f"fraud: {name}", str(count))
    for source, count in summary.labels.items():
        table.add_row(f"labels: {source}", str(count))
    table.add_row("labels dropped (after the end)", str(summary.dropped_labels))
    err.print(table)


@app.command("replay")
def replay_command(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="JSONL stream.")
    ],
    to: Annotated[Target, typer.Option("--to", help="kafka, http, or split (some to each).")],
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap servers.")] = None,
    url: Annotated[str, typer.Option(help="Base URL of the service.")] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str | None, typer.Option(envvar="RIVERGUARD_API_KEY", help="X-API-Key.")
    ] = None,
    rate: Annotated[float | None, typer.Option(min=0.001, help="Events per second.")] = None,
    speedup: Annotated[
        float | None, typer.Option(min=0.001, help="Event time / wall time.")
    ] = None,
    http_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="With --to split: share sent over HTTP.")
    ] = 0.5,
    transactions_topic: Annotated[
        str, typer.Option(help="Kafka topic of transactions.")
    ] = "transactions",
    labels_topic: Annotated[str, typer.Option(help="Kafka topic of labels.")] = "labels",
    concurrency: Annotated[int, typer.Option(min=1, help="Records in flight.")] = 64,
    limit: Annotated[int | None, typer.Option(min=1, help="Send only the first N records.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Replay a stream file to Kafka and/or the REST API."""
    if rate is not None and speedup is not None:
        raise _fail("give --rate or --speedup, not both", 2)
    if to in (Target.KAFKA, Target.SPLIT) and not bootstrap:
        raise _fail("--bootstrap is required to replay to Kafka", 2)
    if to in (Target.HTTP, Target.SPLIT) and not api_key:
        raise _fail("--api-key (or RIVERGUARD_API_KEY) is required to replay over HTTP", 2)
    total = count_records(file)
    total = min(total, limit) if limit else total
    records = itertools.islice(read_jsonl(file), limit)
    http = HttpSink(url, api_key or "")
    kafka = KafkaSink(
        bootstrap or "", transactions_topic=transactions_topic, labels_topic=labels_topic
    )
    sinks: dict[Target, tuple[Sink, Sink | None]] = {
        Target.KAFKA: (kafka, None),
        Target.HTTP: (http, None),
        Target.SPLIT: (kafka, http),
    }
    main, secondary = sinks[to]
    split = Split(secondary, http_share) if secondary is not None else None
    pacing = Pacing(rate=rate, speedup=speedup)
    try:
        summary = asyncio.run(_replay(records, main, split, pacing, concurrency, progress, total))
    except JsonlError as exc:
        raise _fail(str(exc)) from None
    except Exception as exc:  # e.g. the broker is unreachable
        text = str(exc)
        name = type(exc).__name__
        raise _fail(text if text.startswith(name) else f"{name}: {text}") from None
    _print_replay(summary)
    if summary.failed:
        raise _fail(f"{summary.failed} record(s) could not be delivered")


async def _replay(
    records: Iterator[Record],
    main: Sink,
    split: Split | None,
    pacing: Pacing,
    concurrency: int,
    progress: bool,
    total: int,
) -> ReplaySummary:
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(main)
        if split is not None:
            await stack.enter_async_context(split.sink)
        return await replay(
            records,
            main,
            split=split,
            pacing=pacing,
            concurrency=concurrency,
            progress=progress,
            total=total,
        )


def _print_replay(summary: ReplaySummary) -> None:
    data = summary.to_dict()
    table = Table(title="replay", show_header=False)
    table.add_row("records", str(data["records"]))
    table.add_row("seconds", str(data["elapsed_s"]))
    for group in ("by_kind", "by_scenario", "details"):
        for key, count in sorted(data[group].items()):
            table.add_row(f"{group.removeprefix('by_')}: {key}", str(count))
    for section in ("outcomes", "by_sink"):
        for name, counts in sorted(data[section].items()):
            for outcome, count in sorted(counts.items()):
                table.add_row(f"{name}: {outcome}", str(count))
    err.print(table)


__all__ = ["app"]
