"""Core (pure): decision rules — what a rule is, the variables it sees, a compiled rule set.

A rule is a CEL condition over one transaction (docs/rules.md). :class:`RuleSet` holds the
enabled rules compiled and in order (priority, then id): the first matching rule with a
decision action (approve, review, decline) decides, and every matching rule adds its
``reason_code`` to the answer's reasons; ``reason`` rules only add their code. A rule that
fails at run time (an index out of range, a division by zero) does not match and is named in
the outcome's ``errors``: the scoring path never sees an exception from a rule.

A rule's cost was measured when it was saved (:mod:`app.core.rule_cost`); :class:`RunBudget`
watches it at run time too, cheaply: one evaluation of the set in ``every`` is timed rule by
rule, and a rule over ``limit_s`` on ``strikes`` timed evaluations in a row is dropped from
the set at once and listed in ``RuleSet.over`` (the rule book then disables it in the store,
audited, for every process).

A rule in ``shadow`` mode (``shadow=True``, ``enabled=False``) runs on every transaction like an
enabled one, after them, and counts against the same budgets, but neither decides nor adds a
reason: its matches are listed in ``RuleOutcome.shadow`` (counted in a metric and stored with
the record, so its live hits can be compared with a backtest of the same window).

>>> rule = Rule(id="big-ecom", name="big e-commerce", action="review",
...             expression='amount > 1000.0 && channel == "ecom"')
>>> rule.reason_code
'rule_big_ecom'
>>> rules = RuleSet([compile_rule(rule, VARIABLES)])
>>> rules.evaluate({"amount": 5000.0, "channel": "ecom"})  # doctest: +NORMALIZE_WHITESPACE
RuleOutcome(decision='review', rule_id='big-ecom',
            reasons=(('rule_big_ecom', 'big-ecom'),), errors=(), shadow=())
>>> rules.evaluate({"amount": 5.0, "channel": "ecom"}).decision is None
True
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC
from typing import Any, Literal, get_args

import cel

from app.core import cel_tree
from app.core.rule_check import RuleError, VarType, check, check_static, problem
from app.core.rule_constants import pan_constant
from features import definitions
from features.schema import Transaction, redact_pans

Action = Literal["approve", "review", "decline", "reason"]
ACTIONS: tuple[str, ...] = get_args(Action)
DECISIONS = frozenset({"approve", "review", "decline"})
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
CODE_PATTERN = r"^[a-z0-9_]{1,64}$"
MAX_NAME_LENGTH = 200
#: The entities whose list membership a rule sees, as ``<entity>_lists``.
LIST_ENTITIES = ("card", "merchant", "device", "country")

#: Transaction fields (missing optional ones are ""); ``amount`` and ``hour_of_day`` are also
#: feature names: the transaction's value wins (same number; hour_of_day an int, UTC).
TRANSACTION_VARIABLES: dict[str, VarType] = {
    "amount": "double",
    "currency": "string",
    "merchant_category": "string",
    "country": "string",
    "channel": "string",
    "card_id": "string",
    "merchant_id": "string",
    "device_id": "string",
    "customer_id": "string",
    "hour_of_day": "int",
}


def variables(feature_names: Iterable[str] = definitions.FEATURE_NAMES) -> dict[str, VarType]:
    """Every variable a rule may name, with its CEL type."""
    out: dict[str, VarType] = dict.fromkeys(feature_names, "double")
    out.update(TRANSACTION_VARIABLES)
    out["score"] = "double"
    out.update({f"{entity}_lists": "list" for entity in LIST_ENTITIES})
    return out


VARIABLES: Mapping[str, VarType] = variables()


@dataclass(frozen=True)
class Rule:
    """One rule as stored; ``version`` counts its saved changes (set by the store)."""

    id: str
    name: str
    expression: str
    action: Action
    reason_code: str = ""
    priority: int = 100
    enabled: bool = True
    version: int = 1
    shadow: bool = False  # runs and counts its hits without deciding (never with enabled)

    def __post_init__(self) -> None:
        if not re.fullmatch(ID_PATTERN, self.id):
            raise problem(("body", "id"), "rule_id", "an id is a-z, 0-9, _ and - (64 at most)")
        if self.action not in ACTIONS:
            raise problem(("body", "action"), "rule_action", f"the action is one of {ACTIONS}")
        if not self.reason_code:
            object.__setattr__(self, "reason_code", default_code(self.id))
        if not re.fullmatch(CODE_PATTERN, self.reason_code):
            raise problem(("body", "reason_code"), "reason_code", "a code is a-z, 0-9 and _")
        if self.shadow and self.enabled:
            raise problem(("body", "shadow"), "shadow_enabled", "a shadow rule is not enabled")
        if len(self.name) > MAX_NAME_LENGTH:
            raise problem(("body", "name"), "too_long", f"a name has at most {MAX_NAME_LENGTH}")
        # rules are stored, audited and listed: a card number has no place in any of them
        for name in ("id", "name", "expression"):
            if redact_pans(getattr(self, name)) != getattr(self, name):
                raise problem(("body", name), "pan_rejected", "holds what looks like a card number")

    def content(self) -> dict[str, Any]:
        """What a change is made of: every field but the version."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "version"}


def default_code(rule_id: str) -> str:
    """``rule_<id>`` with ``-`` as ``_`` (reason codes are a-z, 0-9 and _, 64 at most)."""
    return ("rule_" + rule_id.replace("-", "_"))[:64]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    program: cel.Program = field(repr=False, compare=False)


def compile_rule(
    rule: Rule,
    variables: Mapping[str, VarType] = VARIABLES,
    max_length: int = 1_000,
    loc: Sequence[str | int] = ("body", "expression"),
    *,
    probe: bool = True,
) -> CompiledRule:
    """Validate ``rule`` (rule_check: tree, names; with ``probe`` types and bool too, by
    evaluating it; no constant folding to a card number: rule_constants) and compile it."""
    checker = check if probe else check_static
    program = checker(rule.expression, variables, max_length=max_length, loc=loc)
    if pan_constant(cel_tree.parse(rule.expression)):
        raise problem(loc, "pan_rejected", "the rule computes what looks like a card number")
    return CompiledRule(rule, program)


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    decision: Literal["approve", "review", "decline"] | None
    rule_id: str | None
    reasons: tuple[tuple[str, str], ...]  # (reason_code, rule id), in rule order
    errors: tuple[str, ...] = ()  # ids of rules that failed at run time (counted as no match)
    shadow: tuple[str, ...] = ()  # ids of the shadow rules that matched


NO_OUTCOME = RuleOutcome(None, None, (), ())


@dataclass(frozen=True, slots=True)
class RunBudget:
    """Run-time cost guard of a rule set (see the module docstring); ``clock`` in seconds."""

    limit_s: float = 0.001
    every: int = 64
    strikes: int = 3
    clock: Callable[[], float] = time.perf_counter


#: No run-time budget (a backtest's figures must not change because a thread was slowed).
UNTIMED = RunBudget(limit_s=float("inf"), every=2**62)


class RuleSet:
    """Compiled rules in order; a change builds a new set, swapped in one step. Only a rule
    over its run-time budget leaves a set in place (see :class:`RunBudget`)."""

    __slots__ = ("_active", "_count", "_strikes", "budget", "over", "rules", "version")

    def __init__(
        self,
        compiled: Iterable[CompiledRule] = (),
        version: int = 0,
        budget: RunBudget | None = None,
    ) -> None:
        self.rules = tuple(sorted(compiled, key=lambda c: (c.rule.priority, c.rule.id)))
        self.version = version
        self.budget = budget or RunBudget()
        self.over: list[str] = []  # dropped over budget, to be disabled in the store
        self._count = 0
        self._strikes: dict[str, int] = {}
        # what the loop needs, looked up once: bound execute, action, id, code (action
        # "shadow": a shadow rule, evaluated after the deciding ones whatever they said)
        live = [c for c in self.rules if c.rule.enabled]
        shadows = [c for c in self.rules if c.rule.shadow and not c.rule.enabled]
        self._active = tuple(
            (c.program.execute, c.rule.action, c.rule.id, c.rule.reason_code) for c in live
        ) + tuple((c.program.execute, "shadow", c.rule.id, "") for c in shadows)

    def __len__(self) -> int:
        return len(self._active)

    def evaluate(self, ctx: Mapping[str, Any]) -> RuleOutcome:
        """The decision of the first matching decision rule and the reasons of every match."""
        if not self._active:
            return NO_OUTCOME
        env = cel.Context()
        env.set_variable_resolver(ctx.get)  # variables are fetched as read, not all converted
        self._count += 1
        clock = self.budget.clock if self._count % self.budget.every == 0 else None
        decision: Any = None
        rule_id = None
        reasons: list[tuple[str, str]] = []
        errors: list[str] = []
        shadow: list[str] = []
        for execute, action, rid, code in self._active:
            if decision is not None and action not in ("reason", "shadow"):
                continue  # decided: later decision rules cannot change it
            began = clock() if clock is not None else 0.0
            try:
                matched: bool | None = execute(env) is True
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:  # a runtime error, or an engine panic
                matched = None
            if clock is not None:
                self._timed(rid, clock() - began)
            if matched is None:
                errors.append(rid)
            elif matched and action == "shadow":
                shadow.append(rid)
            elif matched:
                reasons.append((code, rid))
                if action != "reason":
                    decision, rule_id = action, rid
        return RuleOutcome(decision, rule_id, tuple(reasons), tuple(errors), tuple(shadow))

    def _timed(self, rule_id: str, seconds: float) -> None:
        if seconds <= self.budget.limit_s:
            self._strikes.pop(rule_id, None)
            return
        strikes = self._strikes[rule_id] = self._strikes.get(rule_id, 0) + 1
        if strikes >= self.budget.strikes:
            self._active = tuple(a for a in self._active if a[2] != rule_id)
            self.over.append(rule_id)


def context(
    tx: Transaction,
    features: Mapping[str, float],
    score: float,
    list_hits: Mapping[str, Sequence[str]],
) -> dict[str, Any]:
    """The variables of one transaction (``list_hits``: entity -> list kinds it is on)."""
    ctx: dict[str, Any] = {name: float(value) for name, value in features.items()}
    ctx.update(
        amount=float(tx.amount),
        currency=tx.currency,
        merchant_category=tx.merchant_category or "",
        country=tx.country or "",
        channel=tx.channel or "",
        card_id=tx.card_id,
        merchant_id=tx.merchant_id,
        device_id=tx.device_id or "",
        customer_id=tx.customer_id or "",
        hour_of_day=tx.timestamp.astimezone(UTC).hour,
        score=float(score),
    )
    for entity in LIST_ENTITIES:
        ctx[f"{entity}_lists"] = list(list_hits.get(entity, ()))
    return ctx


__all__ = [
    "ACTIONS",
    "VARIABLES",
    "CompiledRule",
    "Rule",
    "RuleError",
    "RuleOutcome",
    "RuleSet",
    "RunBudget",
    "compile_rule",
    "context",
    "variables",
]
