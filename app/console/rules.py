"""Console room: rules (scope ``admin``) — the list with hit rates, a form to write a rule,
a backtest with a chart, enable / disable, a shadow rule's live figures, and each rule's audit
history.

Changes go through the core :class:`~app.core.rulebook.RuleBook` the REST API uses: the same
checks, a new version per change and an audit entry (who — the key's name —, when, the diff).

Hit rate: the stored transactions each rule *decided* (``decided = 'rule:<id>'``) per UTC day
of event time over the last :data:`HIT_DAYS` days — one count on a partial index (migration
009). A ``reason`` rule decides nothing, so it shows no hits here; a backtest counts its
matches.

Shadow figures: a shadow rule's page shows what ``GET /v1/rules/{id}/shadow`` answers — the
same core call (``BacktestSource.shadow_stats``) — over the last 24 h, 7 d (default) or 30 d of
event time, the only windows offered. The call is one aggregate over the window's stored rows,
cut off after :data:`SHADOW_SECONDS` (the page then says so instead of waiting): the page stays
fast however much traffic is stored.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from app.console import proposals
from app.console.chart import bars, days
from app.console.pages import render
from app.console.session import Session, need, posted
from app.console.state import Services, services
from app.core.backtest import BacktestResult, backtest
from app.core.rule_check import RuleError
from app.core.rulebook import RuleExists, RuleSpec
from app.core.rules import ACTIONS, ID_PATTERN, Rule

router = APIRouter(prefix="/console/rules", include_in_schema=False)
HIT_DAYS = 7
WINDOWS = (1, 7, 30, 90)
#: The shadow figures' windows in days (24 h, 7 d, 30 d), and the page's default.
SHADOW_WINDOWS = (1, 7, 30)
SHADOW_DEFAULT = 7
#: The shadow figures' time limit on a page (the REST call has the store's query timeout).
SHADOW_SECONDS = 5.0
_ID = re.compile(ID_PATTERN)
_FIELDS = ("id", "name", "expression", "action", "reason_code", "priority")


def _errors_of(exc: ValidationError | RuleError) -> dict[str, str]:
    """Field name → message (ours or pydantic's: neither quotes the input)."""
    found = exc.errors() if isinstance(exc, ValidationError) else exc.errors
    out: dict[str, str] = {}
    for error in found:
        loc = [str(part) for part in error["loc"] if str(part) != "body"]
        name = loc[0] if loc else "expression"
        out.setdefault(name, str(error["msg"]).removeprefix("Value error, "))
        if error["type"] == "pan_rejected":
            out[name] = "holds what looks like a card number"
    return out


def _window(fields: dict[str, str]) -> int:
    try:
        chosen = int(fields.get("days", "7"))
    except ValueError:
        chosen = 7
    return chosen if chosen in WINDOWS else 7


async def _run_backtest(svc: Services, rule: Rule, window: int) -> dict[str, Any]:
    """The backtest of ``rule`` over the last ``window`` days, with its chart."""
    now = datetime.now(UTC)
    since = now - timedelta(days=window)
    until = now + svc.settings.scoring.max_future_skew  # accepted events may lie a bit ahead
    result: BacktestResult = await backtest(
        await svc.rules.vet(rule, alone=True), svc.backtests, since, until,
        svc.settings.decisions.backtest_max_rows, seconds=svc.settings.decisions.backtest_seconds,
    )  # fmt: skip
    labels = days(since.date(), until.date())
    return {"result": result, "chart": bars(result.hits_per_day, labels), "window": window}


def _shadow_window(chosen: str | None) -> int:
    """The shadow figures' window in days: one of :data:`SHADOW_WINDOWS`, else the default."""
    offered = {str(d): d for d in SHADOW_WINDOWS}
    return offered.get(chosen or "", SHADOW_DEFAULT)


async def _shadow_figures(svc: Services, rule: Rule, window: int) -> dict[str, Any] | None:
    """A shadow rule's live figures over the last ``window`` days of event time, with their
    chart (``result`` None when they took longer than :data:`SHADOW_SECONDS`); None for a rule
    not in shadow."""
    if not rule.shadow:
        return None
    now = datetime.now(UTC)
    since = now - timedelta(days=window)
    until = now + svc.settings.scoring.max_future_skew  # as the backtest: events a bit ahead
    figures: dict[str, Any] = {"window": window, "since": since, "until": until}
    try:
        async with asyncio.timeout(SHADOW_SECONDS):
            result = await svc.backtests.shadow_stats(rule.id, since, until)
    except TimeoutError:  # ours, or the store's query timeout
        return {**figures, "result": None, "chart": None}
    chart = bars(result.hits_per_day, days(since.date(), until.date()), "shadow hits per day")
    return {**figures, "result": result, "chart": chart}


async def _stored(svc: Services, rule_id: str) -> Rule | None:
    return await svc.rules.store.get(rule_id) if _ID.fullmatch(rule_id) else None


async def _list_page(
    request: Request,
    session: Session,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    tested: dict[str, Any] | None = None,
) -> Response:
    svc = services(request)
    _, stored = await svc.rules.store.load()
    since = (datetime.now(UTC) - timedelta(days=HIT_DAYS - 1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    hits = await svc.insights.rule_hits(since)
    labels = days(since.date(), datetime.now(UTC).date())
    rows: list[dict[str, Any]] = []
    for rule in sorted(stored, key=lambda r: (r.priority, r.id)):
        per_day = hits.get(rule.id, {})
        total = sum(per_day.values())
        chart = bars(per_day, labels, f"{rule.id}: decided per day", small=True)
        rows.append({"rule": rule, "hits": total, "rate": total / HIT_DAYS, "chart": chart})
    return render(
        request, "rules.html", session, status, rows=rows, invalid=svc.rules.invalid,
        values=values or {"action": "review", "priority": "100", "days": "7"},
        errors=errors or {}, tested=tested, actions=ACTIONS, windows=WINDOWS, hit_days=HIT_DAYS,
    )  # fmt: skip


@router.get("")
async def rules_page(request: Request) -> Response:
    return await _list_page(request, need(request, "admin"))


@router.post("")
async def write_rule(request: Request) -> Response:
    """Save the form's rule, or (button ``backtest``) backtest it without saving."""
    session, fields = await posted(request, "admin")
    svc = services(request)
    values = {k: fields.get(k, "").strip() for k in (*_FIELDS, "days")}
    values["expression"] = fields.get("expression", "")
    enabled = fields.get("enabled") == "on"
    values["enabled"] = "on" if enabled else ""
    spec: dict[str, Any] = {k: values[k] for k in _FIELDS if values[k]}
    spec["enabled"] = enabled
    if fields.get("do") == "backtest":
        spec["id"] = "candidate"
    try:
        if "priority" in spec:
            spec["priority"] = int(spec["priority"])
        parsed = RuleSpec.model_validate(spec)
        rule = parsed.rule(parsed.id)
        if fields.get("do") == "backtest":
            tested = await _run_backtest(svc, rule, _window(fields))
            return await _list_page(request, session, 200, values, tested=tested)
        if svc.settings.decisions.four_eyes:
            return await proposals.propose_rule(request, "rule_create", rule.id, rule, session.name)
        saved = await svc.rules.create(rule, session.name)
    except ValueError as exc:  # ValidationError and RuleError are ValueErrors
        if isinstance(exc, ValidationError | RuleError):
            errors = _errors_of(exc)
        else:
            errors = {"priority": "a whole number"}
        for name, message in errors.items():
            if message == "holds what looks like a card number":
                values[name] = ""  # never sent back
        return await _list_page(request, session, 422, values, errors)
    except RuleExists:
        return await _list_page(request, session, 409, values, {"id": "a rule with this id exists"})
    return RedirectResponse(f"/console/rules/{saved.id}", 303)


def _no_such_rule(request: Request, session: Session) -> Response:
    return render(request, "message.html", session, 404, message="No such rule.")


async def _rule_page(
    request: Request,
    session: Session,
    rule_id: str,
    tested: dict[str, Any] | None = None,
    window: int = SHADOW_DEFAULT,
) -> Response:
    svc = services(request)
    rule = await _stored(svc, rule_id)
    if rule is None:
        return _no_such_rule(request, session)
    history = list(reversed(await svc.rules.store.history(rule_id)))
    shadow = await _shadow_figures(svc, rule, window)
    return render(
        request, "rule.html", session, rule=rule, history=history, tested=tested,
        windows=WINDOWS, invalid=rule.id in svc.rules.invalid, shadow=shadow,
        shadow_windows=SHADOW_WINDOWS,
    )  # fmt: skip


@router.get("/{rule_id}")
async def rule_page(rule_id: str, request: Request) -> Response:
    """``?window=1|7|30``: the shadow figures' window in days (else 7)."""
    session = need(request, "admin")
    window = _shadow_window(request.query_params.get("window"))
    return await _rule_page(request, session, rule_id, window=window)


@router.post("/{rule_id}/enabled")
async def switch(rule_id: str, request: Request) -> Response:
    """Enable or disable a rule (a new version, audited with the key's name)."""
    session, fields = await posted(request, "admin")
    svc = services(request)
    rule = await _stored(svc, rule_id)
    if rule is None:
        return _no_such_rule(request, session)
    try:
        on = fields.get("enabled") == "true"  # enabling a shadow rule makes it decide
        switched = replace(rule, enabled=on, shadow=rule.shadow and not on)
        if svc.settings.decisions.four_eyes:
            return await proposals.propose_rule(
                request, "rule_update", rule.id, switched, session.name
            )
        await svc.rules.replace(switched, session.name)
    except RuleError:
        message = "This rule no longer compiles (a variable it names is gone): rewrite it."
        return render(request, "message.html", session, 422, message=message)
    return RedirectResponse(f"/console/rules/{rule.id}", 303)


@router.post("/{rule_id}/backtest")
async def backtest_rule(rule_id: str, request: Request) -> Response:
    session, fields = await posted(request, "admin")
    svc = services(request)
    rule = await _stored(svc, rule_id)
    if rule is None:
        return _no_such_rule(request, session)
    try:
        tested = await _run_backtest(svc, rule, _window(fields))
    except RuleError:
        return render(request, "message.html", session, 422, message="This rule does not compile.")
    return await _rule_page(request, session, rule_id, tested)
