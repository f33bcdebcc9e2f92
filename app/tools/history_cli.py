"""``riverguard history import``: a team's CSV/Parquet export → the project's record stream."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from app.tools import backfill as bf
from app.tools import history_import as hi
from app.tools.history_layouts import LAYOUTS
from simulator.jsonl import write_jsonl
from simulator.records import Record

history_cli = typer.Typer(help="Import a team's labelled history.", no_args_is_help=True)
err = Console(stderr=True)


class _Counting(io.RawIOBase):
    """A binary reader that counts the bytes read (the progress bar's position)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.position = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def _csv_rows(path: Path, counter: _Counting) -> tuple[list[str], Iterator[dict[str, str | None]]]:
    text = io.TextIOWrapper(io.BufferedReader(counter), encoding="utf-8-sig", errors="replace",
                            newline="")  # fmt: skip
    reader = csv.DictReader(text)
    return list(reader.fieldnames or []), iter(reader)


def _cell(value: object) -> str | None:
    """A Parquet cell as the text a CSV export would hold (timestamps in ISO form)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _parquet_rows(path: Path) -> tuple[list[str], Iterator[dict[str, str | None]], int]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise hi.ImportError_(
            "reading Parquet needs pyarrow, the `parquet` extra: .venv/bin/pip install pyarrow"
            " (or export CSV)"
        ) from None
    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow's own errors: not Parquet, truncated, ...
        reason = type(exc).__name__
        raise hi.ImportError_(f"{path} is not a readable Parquet file ({reason})") from None
    columns = list(table.schema_arrow.names)

    def rows() -> Iterator[dict[str, str | None]]:
        for batch in table.iter_batches(batch_size=65_536):
            for item in batch.to_pylist():
                yield {k: _cell(v) for k, v in item.items()}

    return columns, rows(), int(table.metadata.num_rows)


def _spec(
    layout: str | None,
    mapping: str,
    timestamps: str | None,
    start: str | None,
    timezone: str,
    currency: str | None,
    label_delay: str | None,
    label_source: str,
    separate_labels: bool = False,
) -> hi.ImportSpec:
    if layout and layout not in LAYOUTS:
        raise hi.ImportError_(f"unknown layout {layout!r} (known: {', '.join(LAYOUTS)})")
    base = LAYOUTS[layout] if layout else None
    explicit = hi.parse_mapping(mapping)
    inherited = dict(base.mapping) if base else {}
    if separate_labels:  # the labels come from --labels: the layout's label columns are unused
        if mapped := [f for f in hi.LABEL_FIELDS if f in explicit]:
            raise hi.ImportError_(
                f"labels come from --labels: drop {', '.join(mapped)} from --map "
                "(map them with --labels-map)"
            )
        inherited = {k: v for k, v in inherited.items() if k not in hi.LABEL_FIELDS}
    merged = {**inherited, **explicit}
    fmt = timestamps or (base.timestamps if base else "iso")
    if fmt not in {"iso", "epoch", "epoch_ms", "offset"}:
        raise hi.ImportError_("--timestamps is one of iso, epoch, epoch_ms, offset")
    origin = start or (base.start if base else None)
    try:
        zone = ZoneInfo(timezone)
        begins = datetime.fromisoformat(origin.replace("z", "Z")) if origin else None
    except (ZoneInfoNotFoundError, ValueError):
        raise hi.ImportError_("--timezone must be an IANA name and --start RFC 3339") from None
    if begins is not None and begins.tzinfo is None:
        begins = begins.replace(tzinfo=UTC)
    delay = label_delay or (base.label_delay if base else None)
    if label_source not in {"chargeback", "review", "customer", "simulator"}:
        raise hi.ImportError_("--label-source is chargeback, review, customer or simulator")
    return hi.ImportSpec(
        mapping=merged, timestamps=fmt, start=begins, timezone=zone,
        currency=currency or (base.currency if base else None),
        label_delay=hi.parse_duration(delay) if delay else None,
        label_source=label_source,  # type: ignore[arg-type]
    )  # fmt: skip


class _Source:
    """An opened export: its columns, its rows as text, and how far the progress bar has got."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise hi.ImportError_(f"no such file: {path}")
        self.counter: _Counting | None = None
        if path.suffix.lower() in {".parquet", ".pq"}:
            self.columns, self.rows, self.total = _parquet_rows(path)
        else:  # CSV: the position is bytes read, the total the file's size
            self.counter = _Counting(path.open("rb"))
            self.columns, self.rows = _csv_rows(path, self.counter)
            self.total = os.path.getsize(path)

    def position(self, rows: int) -> int:
        return self.counter.position if self.counter else rows


@history_cli.command("import")
def import_command(
    source: Annotated[Path, typer.Argument(help="CSV or Parquet file of transactions")],
    out: Annotated[Path, typer.Option(help="where to write the record stream (JSONL)")] = Path(
        "history.jsonl"
    ),
    layout: Annotated[
        str | None, typer.Option(help=f"a ready mapping: {', '.join(LAYOUTS)}")
    ] = None,
    map_: Annotated[
        str, typer.Option("--map", help="field=COLUMN,... (=VALUE for a constant)")
    ] = "",
    timestamps: Annotated[
        str | None, typer.Option(help="iso | epoch | epoch_ms | offset (seconds after --start)")
    ] = None,
    start: Annotated[str | None, typer.Option(help="origin of offset timestamps")] = None,
    timezone: Annotated[str, typer.Option(help="zone of naive ISO timestamps")] = "UTC",
    currency: Annotated[str | None, typer.Option(help="fixed currency (ISO 4217)")] = None,
    label_delay: Annotated[
        str | None, typer.Option(help="label time = transaction time + this (7d, 36h)")
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="a second file of labels (transaction_id, is_fraud, ...)")
    ] = None,
    labels_map: Annotated[
        str, typer.Option(help="field=COLUMN for --labels (transaction_id, is_fraud, labeled_at)")
    ] = "",
    labels_timestamps: Annotated[
        str | None, typer.Option(help="format of --labels' label times [default: --timestamps]")
    ] = None,
    label_source: Annotated[str, typer.Option(help="source of imported labels")] = "chargeback",
    rejects: Annotated[
        Path, typer.Option(help="CSV of rejected rows (row, part, field, reason; no values)")
    ] = Path("history-rejects.csv"),
) -> None:
    """Validate every row like a live transaction; write records sorted by event time."""
    try:
        spec = _spec(layout if layout else None, map_, timestamps, start, timezone, currency,
                     label_delay, label_source, separate_labels=labels is not None)  # fmt: skip
        if labels_timestamps not in {None, "iso", "epoch", "epoch_ms", "offset"}:
            raise hi.ImportError_("--labels-timestamps is one of iso, epoch, epoch_ms, offset")
        label_spec = hi.ImportSpec(**{
            **spec.__dict__, "mapping": hi.parse_mapping(labels_map),
            "timestamps": labels_timestamps or spec.timestamps,
        })  # fmt: skip
        result = _run(source, spec, labels, label_spec)
    except hi.ImportError_ as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, markup=True)
        raise typer.Exit(2) from None
    written = write_jsonl(result.records, out)
    _write_rejects(result, rejects)
    _summary(result, written, out, rejects)


def _run(
    source: Path, spec: hi.ImportSpec, labels: Path | None, label_spec: hi.ImportSpec
) -> hi.ImportResult:
    source_ = _Source(source)
    hi.check_columns(spec, source_.columns)
    label_rows = None
    if labels is not None:
        labels_ = _Source(labels)
        label_rows = labels_.rows
        wanted = [label_spec.mapping.get(n, n) for n in ("transaction_id", "is_fraud")]
        if missing := [c for c in wanted if c not in labels_.columns]:
            raise hi.ImportError_(f"the labels file has no column {', '.join(missing)}")
    columns_shown = (
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows, {task.fields[rate]:,.0f}/s"),
        TimeRemainingColumn(),
    )  # fmt: skip
    began = time.perf_counter()
    with Progress(*columns_shown, console=err, transient=False) as bar:
        task = bar.add_task("importing", total=source_.total, rows=0, rate=0.0)

        def tick(number: int) -> None:
            if number % 2048 == 0:
                rate = number / max(time.perf_counter() - began, 1e-9)
                bar.update(task, completed=source_.position(number), rows=number, rate=rate)

        result = hi.import_rows(source_.rows, spec, label_rows, label_spec, progress=tick)
        bar.update(task, completed=source_.total, rows=result.rows)
    return result


def _write_rejects(result: hi.ImportResult, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "part", "field", "reason"])
        for item in result.rejects:
            writer.writerow([item.row, item.part, item.field, item.reason])


def _summary(result: hi.ImportResult, written: int, out: Path, rejects: Path) -> None:
    print(f"rows read            {result.rows:,}")
    print(f"transactions         {result.transactions:,}")
    print(f"labels               {result.labels:,}")
    if result.labels_not_yet_known:
        print(f"labels not yet known {result.labels_not_yet_known:,} (label time in the future)")
    print(f"rejected             {sum(result.rejected.values()):,}")
    for reason, count in sorted(result.rejected.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {reason:<30} {count:,}")
    print(f"wrote {written:,} records to {out}; rejects listed in {rejects}")


@history_cli.command("backfill")
def backfill_command(
    stream: Annotated[Path, typer.Argument(help="record stream (history import's --out)")],
    url: Annotated[str, typer.Option(help="a scorer's base URL")] = "http://127.0.0.1:8000",
    learner_url: Annotated[
        str | None, typer.Option(help="the leading learner's base URL [default: --url]")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="RIVERGUARD_API_KEY", help="a key with the score and label scopes"),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="transactions in flight")] = 32,
    wait: Annotated[
        float, typer.Option(min=0, help="seconds to wait for the scorer's bundle at the end")
    ] = 120.0,
) -> None:
    """Send the history through a running deployment in order; resumable; warm at the end."""
    from simulator.jsonl import JsonlError, read_jsonl

    if not api_key:
        err.print("[red]error:[/] --api-key (or RIVERGUARD_API_KEY) is required")
        raise typer.Exit(2)
    try:
        records = list(read_jsonl(stream))
    except (OSError, JsonlError) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, markup=False)
        raise typer.Exit(2) from None
    target = bf.Target(url, learner_url or url, api_key, concurrency=concurrency)
    progress = bf.Progress(stream)
    start = progress.load(len(records))
    if start:
        err.print(f"resuming after {start:,} of {len(records):,} records (from {progress.path})")
    try:
        outcome, learned = asyncio.run(_backfill(records, target, progress, start, wait))
    except bf.BackfillError as exc:
        err.print(f"[red]error:[/] {exc}; run the same command again to resume", highlight=False)
        raise typer.Exit(1) from None
    for kind, counts in (("transactions", outcome.transactions), ("labels", outcome.labels)):
        shown = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) or "none"
        print(f"{kind:<13} {shown}")
    print(f"delivered {outcome.delivered:,} records; the scorer's models hold {learned:,} labels")


async def _backfill(
    records: list[Record], target: bf.Target, progress: bf.Progress, start: int, wait: float
) -> tuple[bf.Outcome, int]:
    columns = (
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
        TextColumn("{task.completed:,}/{task.total:,} records"), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=err) as bar:
        task = bar.add_task("backfilling", total=len(records), completed=start)
        outcome = await bf.backfill(records, target, progress, tick=lambda n: bar.advance(task, n))
    headers = {"X-API-Key": target.api_key}
    async with httpx.AsyncClient(headers=headers, timeout=target.timeout) as client:
        learned = await bf.wait_for_bundle(client, target, wait)
    return outcome, learned
