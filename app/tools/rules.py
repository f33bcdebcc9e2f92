"""Tools: ``riverguard rules backtest`` — a candidate rule over the stored transactions.

Reads RIVERGUARD_DATABASE_URL (migrations are applied as at start) and prints the figures of
:func:`app.core.backtest.backtest`; ``--json`` prints them as one JSON object. A rule that
cannot be saved is reported by error type and column (never echoed) with exit status 2.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from app.config import Settings

rules_cli = typer.Typer(help="Decision rules (docs/rules.md).", no_args_is_help=True)
err = Console(stderr=True)


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        err.print(f"[red]error:[/] {option} must be an RFC 3339 time with a zone (…T00:00:00Z)")
        raise typer.Exit(2)
    return moment


@rules_cli.command("backtest")
def backtest_command(
    expression: Annotated[str, typer.Option(help="the rule's CEL condition")],
    since: Annotated[str, typer.Option(help="window start (event time, inclusive)")],
    until: Annotated[str, typer.Option(help="window end (event time, exclusive)")],
    action: Annotated[str, typer.Option(help="approve, review, decline or reason")] = "review",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Evaluate a rule (not saved) over stored transactions and print hits, precision, ..."""
    from app.core.rule_check import RuleError
    from app.core.rules import Rule, compile_rule

    start, end = _moment(since, "--since"), _moment(until, "--until")
    if end <= start:
        err.print("[red]error:[/] --until must follow --since")
        raise typer.Exit(2)
    settings = Settings()
    try:
        rule = Rule(id="candidate", name="", expression=expression, action=action)  # type: ignore[arg-type]  # checked by Rule
        candidate = compile_rule(rule, max_length=settings.decisions.max_rule_length)
    except RuleError as exc:
        for error in exc.errors:
            where = f" (column {error['column']})" if "column" in error else ""
            err.print(f"[red]error:[/] {error['type']}{where}: {error['msg']}", highlight=False)
        raise typer.Exit(2) from None
    url = settings.secret("database_url")
    if not url:
        err.print("[red]error:[/] RIVERGUARD_DATABASE_URL must be set")
        raise typer.Exit(2)
    d = settings.decisions
    figures = asyncio.run(_run(url, candidate, start, end, d.backtest_max_rows, d.backtest_seconds))
    if as_json:
        print(json.dumps(figures))
        return
    for name, value in figures.items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"{name:>14}: {shown}")


async def _run(
    url: str, candidate: Any, since: datetime, until: datetime, limit: int, seconds: float
) -> Any:
    import asyncpg

    from app.core.backtest import backtest
    from app.postgres import migrate
    from app.postgres.rules import PgRuleStore

    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrate.migrate(conn)
        result = await backtest(candidate, PgRuleStore(pool), since, until, limit, seconds=seconds)
        return result.as_dict()
    finally:
        await pool.close()
