"""Core (use-case): the process's current rules, their store port and the rules file.

:class:`RuleBook` holds the current :class:`~app.core.rules.RuleSet` as a plain attribute
(``book.current``: the scoring path reads it without awaiting). ``refresh()`` asks the store
for its change counter and reloads only when it moved; the service runs it every
``decisions.refresh_seconds``, and a change made through this process refreshes at once;
rules are recompiled on a worker thread (static checks only: they were probed when saved), not
on the event loop that scores. Every change is validated before it is stored — the static
checks, then types and the worst-case cost measured in a child process within a time limit
(:mod:`app.core.rule_cost`): a rule over ``budget.rule_us``, or enabled rules together over
``budget.total_us``, are refused — and audited by the store with who made it and the diff
old → new (:func:`diff`). A rule the run-time budget drops (:class:`app.core.rules.RunBudget`)
is disabled in the store by :meth:`RuleBook.disable_over_budget`, audited as
:data:`RUNTIME_AUTHOR`.

A rules file (:mod:`app.core.rulefile`) is upserted at start: an unchanged rule makes no new
version.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from app.core.rule_check import RuleError, VarType, problem
from app.core.rule_cost import CostBudget, ProcessProber
from app.core.rulefile import RuleFields, RuleFileError, RuleSpec, label, parse_file
from app.core.rules import (
    VARIABLES,
    CompiledRule,
    Rule,
    RuleSet,
    RunBudget,
    compile_rule,
)

__all__ = [  # the rules file's names too: they were defined here first
    "RUNTIME_AUTHOR",
    "Prober",
    "RuleBook",
    "RuleExists",
    "RuleFields",
    "RuleFileError",
    "RuleSpec",
    "RuleStore",
    "diff",
    "parse_file",
]
log = logging.getLogger(__name__)
#: Who disables a rule that went over its run-time budget, in the audit.
RUNTIME_AUTHOR = "runtime-budget"


def _runs(rule: Rule) -> bool:
    """Enabled and shadow rules both run on every transaction (and share the budgets)."""
    return rule.enabled or rule.shadow


class RuleExists(LookupError):
    """A rule with this id exists already (create is not replace)."""


def diff(old: Rule | None, new: Rule | None) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` of the fields that differ (a creation: old null; a deletion:
    new null). Nothing else goes into the audit record."""
    before = {} if old is None else old.content()
    after = {} if new is None else new.content()
    return {
        name: [before.get(name), after.get(name)]
        for name in (after or before)
        if before.get(name) != after.get(name)
    }


class RuleStore(Protocol):
    """Durable rules (current version of each) and their audit history."""

    async def version(self) -> int:
        """A counter that moves with every change (cheap: read on every refresh)."""
        ...

    async def load(self) -> tuple[int, list[Rule]]:
        """(counter, every rule), read together."""
        ...

    async def get(self, rule_id: str) -> Rule | None: ...

    async def create(self, rule: Rule, changed_by: str) -> Rule:
        """Insert as version 1; :class:`RuleExists` when the id is taken."""
        ...

    async def put(self, rule: Rule, changed_by: str, *, must_exist: bool) -> Rule | None:
        """Replace (version + 1) or, unless ``must_exist``, insert; an unchanged rule is
        returned as stored (no new version). None: ``must_exist`` and there is none."""
        ...

    async def delete(self, rule_id: str, changed_by: str) -> bool: ...

    async def history(self, rule_id: str) -> list[dict[str, Any]]:
        """The audit entries of ``rule_id``, oldest first (version, changed_at, by, diff)."""
        ...


class Prober(Protocol):
    """Measures rules off the event loop (:class:`app.core.rule_cost.ProcessProber`)."""

    async def measure(
        self,
        expressions: Sequence[str],
        variables: Mapping[str, VarType],
        *,
        max_length: int,
        caps_us: Sequence[float],
    ) -> list[dict[str, Any]]:
        """Per expression ``{"cost_us": µs}`` or ``{"errors": [...]}``."""
        ...


class RuleBook:
    """The current rule set of this process, and the validated way to change rules."""

    def __init__(
        self,
        store: RuleStore,
        variables: Mapping[str, VarType] = VARIABLES,
        max_length: int = 1_000,
        *,
        budget: CostBudget | None = None,
        runtime: RunBudget | None = None,
        prober: Prober | None = None,
        on_disabled: Callable[[str], None] = lambda rule_id: None,
    ) -> None:
        self.store = store
        self.variables = variables
        self.max_length = max_length
        self.budget, self.runtime = budget or CostBudget(), runtime or RunBudget()
        self.on_disabled = on_disabled
        self.prober: Prober = prober or ProcessProber(self.budget.check_seconds)
        self.current = RuleSet(budget=self.runtime)
        self.loaded_version = -1
        self.invalid: tuple[str, ...] = ()  # stored rules that no longer compile (skipped)
        self._reloading = asyncio.Lock()

    def compile(
        self, rule: Rule, loc: Sequence[str | int] = ("body", "expression"), *, probe: bool = False
    ) -> CompiledRule:
        """The static checks (with ``probe``, the type probes too) in this thread."""
        return compile_rule(rule, self.variables, self.max_length, loc, probe=probe)

    async def vet(
        self, rule: Rule, loc: Sequence[str | int] = ("body", "expression"), *, alone: bool = False
    ) -> CompiledRule:
        """Every check of a rule about to be saved (or backtested, ``alone``): static ones on
        a thread, then types and cost in the prober; ``RuleError`` when it cannot be."""
        compiled = await asyncio.to_thread(self.compile, rule, loc)
        if not alone and _runs(rule):
            # measured with the rules stored now, not the ones this process last loaded: a
            # rule enabled through another process within the refresh interval counts too
            await self.refresh()
        others = [
            c.rule.expression
            for c in self.current.rules
            if _runs(c.rule) and c.rule.id != rule.id and _runs(rule) and not alone
        ]
        results = await self.prober.measure(
            [rule.expression, *others],
            self.variables,
            max_length=self.max_length,
            caps_us=[self.budget.rule_us] + [self.budget.total_us] * len(others),
        )
        self._judge(results[0], loc)
        total = sum(float(r.get("cost_us", 0.0)) for r in results)
        if total > self.budget.total_us:
            raise problem(
                loc, "too_costly",
                f"with the enabled rules it would cost about {total:.0f} µs per transaction; "
                f"enabled rules may cost {self.budget.total_us:.0f} µs together",
            )  # fmt: skip
        return compiled

    def _judge(self, result: Mapping[str, Any], loc: Sequence[str | int]) -> None:
        """Raise the prober's refusal of one rule, or the refusal of its cost."""
        if "errors" in result:
            raise RuleError([{**e, "loc": [str(p) for p in loc]} for e in result["errors"]])
        cost = float(result["cost_us"])
        if cost > self.budget.rule_us:
            raise problem(
                loc, "too_costly",
                f"the rule costs about {cost:.0f} µs per transaction on worst-case inputs; "
                f"a rule may cost {self.budget.rule_us:.0f} µs",
            )  # fmt: skip

    def _compile_all(self, rules: Sequence[Rule]) -> tuple[list[CompiledRule], list[str]]:
        compiled, invalid = [], []
        for rule in rules:
            try:
                compiled.append(self.compile(rule))
            except RuleError as exc:
                # e.g. a feature renamed since it was saved: skip it, keep the others
                invalid.append(rule.id)
                log.error("rule %s is skipped: %s", rule.id, exc)
        return compiled, invalid

    async def refresh(self) -> bool:
        """Reload when the store changed; True when the current set was replaced.

        One reload at a time: the periodic one, slowly reading a change made through another
        process, must not replace the newer rules a change made here has just loaded.
        """
        async with self._reloading:
            if await self.store.version() == self.loaded_version:
                return False
            version, rules = await self.store.load()
            compiled, invalid = await asyncio.to_thread(self._compile_all, rules)
            pending = self.current.over  # not yet disabled in the store: keep them dropped
            self.current = RuleSet(
                [c for c in compiled if c.rule.id not in pending], version, self.runtime
            )
            self.current.over.extend(pending)
            self.loaded_version, self.invalid = version, tuple(invalid)
            return True

    async def disable_over_budget(self) -> list[str]:
        """Disable in the store (audited) each rule the run-time budget dropped here."""
        done = []
        for rule_id in list(self.current.over):
            rule = await self.store.get(rule_id)
            if rule is not None and _runs(rule):
                off = replace(rule, enabled=False, shadow=False)
                await self.store.put(off, RUNTIME_AUTHOR, must_exist=True)
                self.on_disabled(rule_id)
                log.warning("rule %s went over its run-time budget: disabled", rule_id)
                done.append(rule_id)
            self.current.over.remove(rule_id)
        if done:
            await self.refresh()
        return done

    async def follow(self, every: float) -> None:
        """Refresh every ``every`` seconds until cancelled; a failed refresh keeps the rules."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.disable_over_budget()
                await self.refresh()
            except Exception as exc:  # the store is down: score with the rules we have
                log.warning("rules refresh failed (%s); keeping these rules", type(exc).__name__)

    async def create(self, rule: Rule, changed_by: str) -> Rule:
        await self.vet(rule)
        saved = await self.store.create(rule, changed_by)
        await self.refresh()
        return saved

    async def replace(self, rule: Rule, changed_by: str) -> Rule | None:
        await self.vet(rule)
        saved = await self.store.put(rule, changed_by, must_exist=True)
        await self.refresh()
        return saved

    async def delete(self, rule_id: str, changed_by: str) -> bool:
        deleted = await self.store.delete(rule_id, changed_by)
        await self.refresh()
        return deleted

    async def load_file(self, raw: bytes, source: str) -> int:
        """Validate every rule of a rules file (cost too), then upsert them; how many changed."""
        rules = parse_file(raw, source, self)
        results = await self.prober.measure(
            [rule.expression for rule in rules],
            self.variables,
            max_length=self.max_length,
            caps_us=[self.budget.rule_us] * len(rules),
        )  # one child process for the file, each rule alone against the per-rule budget
        for position, (rule, result) in enumerate(zip(rules, results, strict=True), 1):
            try:
                self._judge(result, ("rules", position, "expression"))
            except RuleError as exc:
                kinds = ", ".join(sorted({f"{e['loc'][-1]}: {e['type']}" for e in exc.errors}))
                name = label({"id": rule.id}, position)
                raise RuleFileError(f"rules file {source}: {name}: {kinds}") from None
        changed = 0
        for rule in rules:
            before = await self.store.get(rule.id)
            saved = await self.store.put(rule, f"file:{source}", must_exist=False)
            changed += before is None or (saved is not None and saved.version != before.version)
        await self.refresh()
        return changed
