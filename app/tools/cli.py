"""The ``riverguard`` command: serve, dev, stack, migrate and the tools built on them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from pydantic import SecretStr, ValidationError
from rich.console import Console
from rich.markup import escape

from app.api import auth
from app.config import Settings
from app.tools import embedded
from app.tools.history_cli import history_cli
from app.tools.rules import rules_cli

cli = typer.Typer(
    name="riverguard",
    help="Self-hosted online-learning fraud scoring.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def main() -> None:
    """Entry point of the console script."""
    _mount_subcommands()
    try:
        cli()
    except ValidationError as exc:  # settings from the environment that cannot run together
        err.print(
            "[red]error:[/] invalid settings:\n" + escape(settings_problems(exc)), highlight=False
        )
        raise SystemExit(2) from None
    except embedded.EmbeddedStackError as exc:
        # The message says what to do; a traceback would bury it.
        err.print("[red]error:[/]", escape(str(exc)), highlight=False)
        raise SystemExit(1) from None


def settings_problems(exc: ValidationError) -> str:
    """One line per problem: the setting's name and what is wrong (never the value: secrets)."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        name = "RIVERGUARD_" + "__".join(str(part) for part in error["loc"]).upper()
        lines.append(f"  {name if error['loc'] else 'RIVERGUARD_*'}: {error['msg']}")
    return "\n".join(lines)


def _mount_subcommands() -> None:
    # Imported here so that `riverguard --help` stays fast and nothing runs at import time.
    with contextlib.suppress(ImportError):
        from simulator.cli import app as simulate_app

        cli.add_typer(simulate_app, name="simulate", help="Generate and replay simulated streams.")


@contextlib.contextmanager
def _signals_as_exit() -> Iterator[None]:
    """SIGTERM/SIGINT raise SystemExit in the main thread, so `finally` blocks run."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@cli.command()
def stack(
    redis_cluster: Annotated[
        bool, typer.Option(help="a three-node Valkey Cluster instead of one Valkey")
    ] = False,
) -> None:
    """Start embedded Kafka, Valkey and PostgreSQL; print `export` lines; run until stopped."""
    with _signals_as_exit():
        server = embedded.EmbeddedStack()
        try:
            urls = server.start(redis_cluster=redis_cluster)
            for line in urls.exports():
                print(line)
            sys.stdout.flush()
            err.print(f"[green]stack running[/] (pids {server.pids()}); Ctrl-C or SIGTERM stops it")
            signal.pause()
        finally:
            server.close()


@cli.command()
def serve(
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="processes sharing the port (SO_REUSEPORT); one learns, all score"
        ),
    ] = 1,
) -> None:
    """Run the API (and stream workers) with settings from RIVERGUARD_* variables."""
    settings = Settings()
    if workers == 1:
        _run_server(settings)
        return
    if settings.port == 0:
        err.print("[red]error:[/] --workers needs a fixed RIVERGUARD_PORT (not 0)")
        raise typer.Exit(2)
    from app.tools.workers import run_workers

    raise typer.Exit(run_workers(workers))


@cli.command()
def learner() -> None:
    """Run a learner: it leads (or stands by) and learns; it consumes no Kafka transactions."""
    _run_server(Settings(role="learner"))


@cli.command()
def dev() -> None:
    """Embedded servers for whatever is not configured, then the service (Ctrl-C stops all)."""
    settings = Settings()
    with _signals_as_exit(), embedded.EmbeddedStack() as server:
        urls = server.start(
            kafka=settings.kafka_bootstrap is None,
            redis=settings.redis_url is None,
            postgres=settings.database_url is None,
        )
        settings = _with_urls(settings, urls)
        key = None
        if not settings.api_keys:
            key = auth.generate_key()
            settings = settings.model_copy(
                update={
                    "api_keys": SecretStr(f"{key}=score|label|review|admin@dev"),
                    "dev_mode": True,
                }
            )
        for line in urls.exports():
            err.print(line, highlight=False)
        address = f"http://{settings.host}:{settings.port}"
        if key:
            err.print(f"[bold]API key (score, label, review, admin):[/] {key}", highlight=False)
        err.print(f"API on {address}  (docs at /docs)")
        err.print(f"Console on {address}/console/")
        # the line the documentation's examples start from: paste it into another shell
        exports = f"export RG={address}" + (f" KEY={key}" if key else "")
        err.print(exports, highlight=False, soft_wrap=True)
        _run_server(settings)


@cli.command()
def demo(
    days: Annotated[float, typer.Option(help="simulated days")] = 14.0,
    cards: Annotated[int, typer.Option(help="cards in the simulated population")] = 2200,
    seed: Annotated[int, typer.Option(help="random seed of the stream")] = 7,
    http_share: Annotated[float, typer.Option(help="share of transactions sent via REST")] = 0.2,
    http_rate: Annotated[
        float,
        typer.Option(min=1.0, help="REST requests per second, at a fixed rate (open loop)"),
    ] = 200.0,
    out: Annotated[Path, typer.Option(help="where to write the report")] = Path(
        "riverguard-report.html"
    ),
    live: Annotated[bool, typer.Option(help="live progress display")] = True,
) -> None:
    """Simulated stream → Kafka and REST → live view → summary and HTML report."""
    from app.tools import demo as demo_module
    from app.tools import demo_decisions
    from app.tools.demo_service import DemoService

    settings = Settings()
    console = Console(stderr=False)
    options = demo_module.DemoOptions(
        days=days,
        cards=cards,
        seed=seed,
        http_share=http_share,
        http_rate=http_rate,
        out=out,
        live=live,
    )
    with (
        _signals_as_exit(),
        embedded.EmbeddedStack() as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        started = server.start(
            kafka=settings.kafka_bootstrap is None,
            redis=settings.redis_url is None,
            postgres=settings.database_url is None,
        )
        merged = _with_urls(settings, started)
        urls = embedded.StackUrls(
            merged.kafka_bootstrap, merged.secret("redis_url"), merged.secret("database_url")
        )
        service = DemoService(
            urls,
            auth.generate_key(),
            Path(tmp) / "service.log",
            extra_env=demo_decisions.budget_env(),
        )
        try:
            console.print("starting the service (API + Kafka workers)...")
            service.start()
            asyncio.run(demo_module.run(service, options, console))
        finally:
            service.stop()


@cli.command()
def evaluate(
    data: Annotated[Path, typer.Argument(help="simulator JSONL (riverguard simulate generate)")],
    models: Annotated[
        str, typer.Option(help="comma-separated zoo models [default: champion, challengers]")
    ] = "",
    baseline: Annotated[
        str, typer.Option(help="weekly batch baseline: hgb, logreg or none")
    ] = "hgb",
    review_budget: Annotated[
        float | None, typer.Option(min=0, max=0.5, help="share to review [default: settings, 2 %]")
    ] = None,
    decline_budget: Annotated[
        float | None,
        typer.Option(min=0, max=0.5, help="share to decline [default: settings, 0.5 %]"),
    ] = None,
) -> None:
    """Prequential quality of each model on a stream, beside a weekly-retrained batch model."""
    from app.tools import evaluate as evaluate_module
    from app.tools import evaluate_budget
    from models import evaluation, zoo
    from simulator.jsonl import JsonlError, read_jsonl

    if not data.is_file():
        err.print(f"[red]error:[/] no such file: {data}")
        raise typer.Exit(2)
    names = [n.strip() for n in models.split(",") if n.strip()]
    if not names:
        scoring = Settings().scoring
        names = [scoring.champion, *(c for c in scoring.challengers if c != scoring.champion)]
    unknown = [n for n in names if n not in zoo.ZOO]
    if unknown or baseline not in {"hgb", "logreg", "none"}:
        err.print(f"[red]error:[/] unknown model(s) {unknown} or baseline {baseline!r}")
        raise typer.Exit(2)
    try:
        stream = list(evaluate_module.events(read_jsonl(data)))
    except JsonlError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    try:
        runs = evaluate_module.runs(stream, [zoo.ZOO[n] for n in names], baseline)
    except ImportError:
        err.print("scikit-learn is not installed (dev dependency): no batch baseline")
        runs = evaluate_module.runs(stream, [zoo.ZOO[n] for n in names], "none")
    print(evaluation.format_table([evaluation.row(run, timed=timed) for run, timed in runs]))
    decisions = Settings().decisions
    review = review_budget if review_budget is not None else decisions.review_budget or 0.02
    decline = decline_budget if decline_budget is not None else decisions.decline_budget or 0.005
    shown = [run for run, _ in runs if "." not in run.name]  # members are in the table above
    print("\nAP per week (labelled transactions of the week)")
    print(evaluate_budget.format_weekly(shown))
    outcomes = [evaluate_budget.budget_outcome(run, review, decline) for run in shown]
    print()
    print(evaluate_budget.format_budgets(outcomes, review, decline))


features_cli = typer.Typer(help="Feature store maintenance.", no_args_is_help=True)
cli.add_typer(features_cli, name="features")


@features_cli.command("rebuild")
def features_rebuild() -> None:
    """Recompute the Redis feature state from Postgres (e.g. after Redis lost its data)."""
    from app.backends import ConfigurationError, open_backends
    from app.postgres.repository import PgRepository
    from app.tools import rebuild

    settings = Settings()

    async def run() -> str:
        async with open_backends(settings) as backends:
            stats = await rebuild.rebuild_features(
                backends.redis, PgRepository(backends.db), settings.scoring.lateness_days
            )
        return (
            f"rebuilt from {stats.transactions:,} transactions and {stats.labels:,} labels "
            f"in {stats.seconds:.1f}s"
        )

    try:
        err.print(asyncio.run(run()))
    except ConfigurationError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


@cli.command("migrate")
def migrate_command() -> None:
    """Apply pending Postgres migrations."""
    import asyncpg

    from app.postgres import migrate

    settings = Settings()
    url = settings.secret("database_url")
    if not url:
        err.print("[red]error:[/] RIVERGUARD_DATABASE_URL must be set")
        raise typer.Exit(2)

    async def run() -> list[str]:
        conn = await asyncpg.connect(url)
        try:
            return await migrate.migrate(conn)
        finally:
            await conn.close()

    applied = asyncio.run(run())
    err.print(f"applied: {', '.join(applied) if applied else 'nothing (up to date)'}")


db_cli = typer.Typer(help="The durable record (Postgres).", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(rules_cli, name="rules")
cli.add_typer(history_cli, name="history")


@db_cli.command("prune")
def db_prune(
    dry_run: bool = typer.Option(False, "--dry-run", help="list what would be dropped"),
) -> None:
    """Drop the day partitions older than RIVERGUARD_PERSISTENCE__RETENTION_DAYS (UTC days)."""
    from datetime import UTC, datetime, timedelta

    import asyncpg

    from app.postgres.repository import PgRepository

    settings = Settings()
    url, days = settings.secret("database_url"), settings.persistence.retention_days
    if not url or days is None:
        err.print(
            "[red]error:[/] RIVERGUARD_DATABASE_URL and"
            " RIVERGUARD_PERSISTENCE__RETENTION_DAYS must be set"
        )
        raise typer.Exit(2)
    today = datetime.now(UTC).date()

    async def run() -> list[str]:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
        try:
            repository = PgRepository(pool)
            if dry_run:
                horizon = today - timedelta(days=days)
                return [n for n, d in await repository.partitions() if d and d < horizon]
            return await repository.prune(days, today)
        finally:
            await pool.close()

    names = asyncio.run(run())
    verb = "would drop" if dry_run else "dropped"
    err.print(f"{verb}: {', '.join(names) if names else 'nothing'}")


def _with_urls(settings: Settings, urls: embedded.StackUrls) -> Settings:
    update: dict[str, object] = {}
    if urls.kafka_bootstrap:
        update["kafka_bootstrap"] = urls.kafka_bootstrap
    if urls.redis_url:
        update["redis_url"] = urls.redis_url
    if urls.database_url:
        update["database_url"] = urls.database_url
    # model_copy skips validation; SecretStr fields must receive SecretStr values.
    validated = Settings.model_validate({**settings.model_dump(), **update})
    return validated


def _run_server(settings: Settings) -> None:
    import uvicorn

    from app.backends import ConfigurationError, require
    from app.main import create_app

    try:
        require(settings)
        application = create_app(settings)
    except ConfigurationError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None

    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        lifespan="on",
        access_log=False,
        # open HTTP requests get this long after SIGTERM; then the lifespan shutdown runs
        timeout_graceful_shutdown=math.ceil(settings.stream.shutdown_seconds),
    )
    server = uvicorn.Server(config)
    if settings.reuse_port:  # one of several processes on this port: the kernel balances
        server.run(sockets=[_shared_socket(settings.host, settings.port)])
    else:
        server.run()


def _shared_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock
