"""Adapter (REST, admin scope): decision rules — list, read, create, replace, delete, history,
and backtest a candidate rule over stored transactions (docs/rules.md).

A rule that cannot be saved is a 422 Problem whose ``errors`` give the location, a type
(``rule_syntax``, ``unknown_variable``, ``rule_type``, ``not_boolean``, ``too_long``,
``too_complex``, ``rebound_variable``, ``too_costly``, ``pan_rejected``, ...) and a message of
ours, never a part of the expression. Saving measures the rule's cost in a child process
(app.core.rule_cost), never on this event loop. Changes are audited with the calling key's
name. DELETE removes the rule (its audit history stays); to switch a rule off and keep it, PUT
it with ``"enabled": false``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.api import auth, proposals
from app.api.deps import AppState, State, now
from app.api.errors import problem, problem_responses
from app.core.backtest import backtest
from app.core.proposals import Kind, NoSuchRule
from app.core.rule_check import RuleError
from app.core.rulebook import RuleExists, RuleFields, RuleSpec
from app.core.rules import ID_PATTERN, Action, Rule

_admin = auth.requires("admin")
router = APIRouter(prefix="/v1/rules", tags=["rules"], dependencies=[Depends(_admin)])
#: The calling key (FastAPI runs ``_admin`` once a request, for the router and the handler).
Admin = Annotated[auth.Principal, Depends(_admin)]
RuleId = Annotated[str, Path(pattern=ID_PATTERN, max_length=64)]
_PROBLEMS = problem_responses(401, 403, 413, 422)


class RuleOut(BaseModel):
    id: str
    name: str
    expression: str
    action: Action
    reason_code: str
    priority: int
    enabled: bool
    shadow: bool = Field(description="runs on live traffic and counts hits without deciding")
    version: int


class RuleList(BaseModel):
    rules: list[RuleOut]
    version: int = Field(description="the store's change counter")
    invalid: list[str] = Field(description="stored rules this process skips (no longer compile)")


class HistoryEntry(BaseModel):
    version: int
    changed_at: str
    changed_by: str
    change: dict[str, list[Any]]


class History(BaseModel):
    rule_id: str
    history: list[HistoryEntry]


class BacktestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    expression: str = Field(min_length=1, max_length=10_000)
    action: Action = "review"
    since: AwareDatetime
    until: AwareDatetime


class BacktestAnswer(BaseModel):
    since: str
    until: str
    rows_scanned: int
    truncated: bool
    timed_out: bool = Field(description="cut short by RIVERGUARD_DECISIONS__BACKTEST_SECONDS")
    hits: int
    hit_rate: float
    labelled_hits: int
    frauds_caught: int
    precision: float | None
    model_overlap: int
    errors: int
    hits_per_day: dict[str, int]


def _out(rule: Rule) -> RuleOut:
    return RuleOut(**rule.content(), version=rule.version)


def _invalid(exc: RuleError) -> JSONResponse:
    return problem(422, "invalid rule", exc.errors)


async def _propose(
    state: AppState, kind: Kind, rule_id: str, body: RuleFields | None, who: str
) -> Response:
    """A pending proposal of a rule change that could be applied now (else its 4xx)."""
    rule = None if body is None else body.rule(rule_id)
    try:
        proposal = await state.proposals.rule_change(kind, rule_id, rule, who, now())
    except RuleError as exc:
        return _invalid(exc)
    except RuleExists:
        raise HTTPException(status.HTTP_409_CONFLICT, "a rule with this id exists") from None
    except NoSuchRule:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such rule") from None
    return proposals.accepted(proposal)


async def _replaced(state: AppState, rule: Rule, who: str) -> Any:
    """The rule's new version (422 when it does not compile, 404 when there is no such rule)."""
    try:
        saved = await state.rules.replace(rule, who)
    except RuleError as exc:
        return _invalid(exc)
    if saved is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such rule")
    return _out(saved)


@router.get("", response_model=RuleList, summary="List rules", responses=_PROBLEMS)
async def list_rules(state: State) -> RuleList:
    version, rules = await state.rules.store.load()
    return RuleList(
        rules=[_out(r) for r in rules], version=version, invalid=list(state.rules.invalid)
    )


@router.post(
    "/backtest",
    response_model=BacktestAnswer,
    summary="Backtest a candidate rule over stored transactions",
    responses=_PROBLEMS,
)
async def backtest_rule(body: BacktestRequest, state: State) -> Any:
    """List variables are empty in a backtest (list membership has no history)."""
    if body.until <= body.since:
        error = {"loc": ["body", "until"], "type": "empty_window", "msg": "until must follow since"}
        return problem(422, "invalid window", [error])
    try:
        rule = Rule(id="candidate", name="", expression=body.expression, action=body.action)
        candidate = await state.rules.vet(rule, alone=True)
    except RuleError as exc:
        return _invalid(exc)
    decisions = state.settings.decisions
    result = await backtest(
        candidate,
        state.backtests,
        body.since,
        body.until,
        decisions.backtest_max_rows,
        seconds=decisions.backtest_seconds,
    )
    return BacktestAnswer(**result.as_dict())


@router.get(
    "/{rule_id}", response_model=RuleOut, summary="Read a rule", responses=problem_responses(404)
)
async def get_rule(rule_id: RuleId, state: State) -> RuleOut:
    rule = await state.rules.store.get(rule_id)
    if rule is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such rule")
    return _out(rule)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RuleOut,
    summary="Create a rule",
    responses={**_PROBLEMS, **problem_responses(409), **proposals.ACCEPTED},
)
async def create_rule(body: RuleSpec, who: Admin, state: State) -> Any:
    """With four-eyes on: 202 and a pending proposal (``/v1/proposals``) instead."""
    if state.settings.decisions.four_eyes:
        return await _propose(state, "rule_create", body.id, body, who.name)
    try:
        saved = await state.rules.create(body.rule(body.id), who.name)
    except RuleError as exc:
        return _invalid(exc)
    except RuleExists:
        raise HTTPException(status.HTTP_409_CONFLICT, "a rule with this id exists") from None
    return _out(saved)


@router.put(
    "/{rule_id}",
    response_model=RuleOut,
    summary="Replace a rule (a new version when anything changed)",
    responses={**_PROBLEMS, **problem_responses(404), **proposals.ACCEPTED},
)
async def replace_rule(rule_id: RuleId, body: RuleFields, who: Admin, state: State) -> Any:
    """Enabling and disabling are replacements; with four-eyes on, 202 and a proposal."""
    if state.settings.decisions.four_eyes:
        return await _propose(state, "rule_update", rule_id, body, who.name)
    return await _replaced(state, body.rule(rule_id), who.name)


@router.delete(
    "/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a rule (its history stays)",
    responses={**_PROBLEMS, **problem_responses(404), **proposals.ACCEPTED},
)
async def delete_rule(rule_id: RuleId, who: Admin, state: State) -> Response:
    """With four-eyes on: 202 and a pending proposal instead."""
    if state.settings.decisions.four_eyes:
        return await _propose(state, "rule_delete", rule_id, None, who.name)
    if not await state.rules.delete(rule_id, who.name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such rule")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{rule_id}/enable",
    response_model=RuleOut,
    summary="Enable a rule (a shadow rule starts deciding)",
    responses={**_PROBLEMS, **problem_responses(404), **proposals.ACCEPTED},
)
async def enable_rule(rule_id: RuleId, who: Admin, state: State) -> Any:
    """With four-eyes on: 202 and a pending proposal instead."""
    rule = await state.rules.store.get(rule_id)
    if rule is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such rule")
    enabled = replace(rule, enabled=True, shadow=False)
    if not state.settings.decisions.four_eyes:
        return await _replaced(state, enabled, who.name)
    try:
        proposal = await state.proposals.rule_change(
            "rule_update", rule_id, enabled, who.name, now()
        )
    except RuleError as exc:
        return _invalid(exc)
    return proposals.accepted(proposal)


@router.get(
    "/{rule_id}/shadow",
    response_model=BacktestAnswer,
    summary="A rule's live shadow hits over a window (the backtest's figures)",
    responses=_PROBLEMS,
)
async def shadow_figures(
    rule_id: RuleId, since: AwareDatetime, until: AwareDatetime, state: State
) -> Any:
    """Counted from the shadow hits stored with each scored transaction of the window."""
    if until <= since:
        error = {"loc": ["query", "until"], "type": "empty_window", "msg": "until must follow"}
        return problem(422, "invalid window", [error])
    result = await state.backtests.shadow_stats(rule_id, since, until)
    return BacktestAnswer(**result.as_dict())


@router.get(
    "/{rule_id}/history",
    response_model=History,
    summary="Every change of a rule, oldest first",
    responses={**_PROBLEMS, **problem_responses(404)},
)
async def rule_history(rule_id: RuleId, state: State) -> History:
    entries = await state.rules.store.history(rule_id)
    if not entries:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such rule")
    return History(rule_id=rule_id, history=[HistoryEntry(**e) for e in entries])
