"""The decision layer around the champion's score: lists, rules, warm-up, then the model.

Which layer decides, first match wins:

1. **lists**: a block-list entry for the card, merchant, device or country declines; an
   allow-list entry (and no block entry) approves. A watch-list entry only adds a reason (and
   is visible to rules).
2. **rules**: the first enabled matching rule with an approve/review/decline action (by
   priority) decides; rules with the "reason" action only add their reason.
3. **warm-up** (below): a champion that has not learned enough is not acted on — approve.
4. **model**: the champion's score against the cutoffs (fixed thresholds or budgets, see
   :mod:`app.core.budgets`).

The model's score is always computed, reported and stored beside the decision, whoever made it.

Warm-up: until the champion has learned ``labels`` labels, ``frauds`` of them fraud, its
score is reported but not acted on — the transaction is approved with the reason
``model_warming_up`` and the answer says ``decided_by: "warmup"``. A fresh install therefore
never floods the review queue with the 0.5 a model answers before it has learned anything.
The learner updates the state after every batch it learns (and after a restore); the
scoring path only reads one boolean.

>>> warm = WarmUp(labels=2, frauds=1)
>>> warm.observe(learned=1, frauds=1), warm.done
(False, False)
>>> warm.observe(learned=2, frauds=1), warm.done
(True, True)
>>> warm.observe(learned=0, frauds=0), warm.done  # once over, over for good
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from app.core import rules
from app.core.budgets import Cutoffs
from features.schema import DecidedBy, Decision, Reason, Transaction
from models import pool as model_pool

WARMING_UP = "model_warming_up"
#: list entities and the transaction field each one matches
LIST_FIELDS = {
    "card": "card_id",
    "merchant": "merchant_id",
    "device": "device_id",
    "country": "country",
}


@dataclass
class WarmUp:
    labels: int = 1_000
    frauds: int = 10
    done: bool = False
    learned: int = 0  # the champion's, at the last observation

    def observe(self, learned: int, frauds: int) -> bool:
        """Record the champion's progress; True once warm-up is over."""
        self.learned = learned
        if not self.done and learned >= self.labels and frauds >= self.frauds:
            self.done = True
        return self.done

    def observe_pool(self, pool: model_pool.ModelPool) -> bool:
        member = pool.members[pool.champion]
        return self.observe(member.learned, member.frauds)

    def reason(self) -> Reason:
        return Reason(code=WARMING_UP, feature="champion_labels_learned", value=self.learned)


@dataclass(frozen=True)
class RuleResult:
    """What the rules said of one transaction (see :mod:`app.core.rules`)."""

    decision: Decision | None = None
    rule_id: str | None = None
    reasons: tuple[Reason, ...] = ()
    shadow: tuple[str, ...] = ()  # shadow rules that matched (they decide nothing)


@dataclass(frozen=True)
class Verdict:
    """The decision, the layer that made it and the layers' reasons (model reasons follow)."""

    decision: Decision
    decided_by: DecidedBy
    rule_id: str | None = None
    reasons: list[Reason] = field(default_factory=list)


def decide(
    score: float,
    cutoffs: Cutoffs,
    warmup: WarmUp,
    list_hits: Mapping[str, Sequence[str]] | None = None,
    rules: RuleResult | None = None,
) -> Verdict:
    """The layers in order (module docstring); ``list_hits``: entity -> list kinds it is on.

    >>> cut = Cutoffs(review=0.5, decline=0.9)
    >>> decide(0.95, cut, WarmUp(0, 0, done=True), {"card": ["allow"]}).decision
    'approve'
    >>> v = decide(0.1, cut, WarmUp(0, 0, done=True), {"merchant": ["watch", "block"]})
    >>> v.decision, v.decided_by, [r.code for r in v.reasons]
    ('decline', 'list', ['list_block', 'list_watch'])
    >>> decide(0.6, cut, WarmUp(5, 1), rules=RuleResult("review", "big")).decided_by
    'rule'
    >>> decide(0.6, cut, WarmUp(5, 1)).decision, decide(0.6, cut, WarmUp(0, 0, done=True)).decision
    ('approve', 'review')
    """
    reasons = _list_reasons(list_hits or {})
    kinds = {r.code for r in reasons}
    extra = list(rules.reasons) if rules is not None else []
    if "list_block" in kinds or "list_allow" in kinds:
        decision: Decision = "decline" if "list_block" in kinds else "approve"
        return Verdict(decision, "list", None, reasons + extra)
    if rules is not None and rules.decision is not None:
        return Verdict(rules.decision, "rule", rules.rule_id, reasons + extra)
    if not warmup.done:
        return Verdict("approve", "warmup", None, [warmup.reason(), *reasons, *extra])
    return Verdict(cutoffs.decide(score), "model", None, reasons + extra)


def _list_reasons(hits: Mapping[str, Sequence[str]]) -> list[Reason]:
    """Block before allow before watch: the deciding reason comes first."""
    order = {"block": 0, "allow": 1, "watch": 2}
    found = [(order[k], entity, k) for entity, kinds in hits.items() for k in kinds if k in order]
    return [
        Reason(code=f"list_{kind}", feature=LIST_FIELDS.get(entity, entity), value=1.0)
        for _, entity, kind in sorted(found)
    ]


def rule_check(
    book: Callable[[], rules.RuleSet],
    on_error: Callable[[str], None],
    on_shadow: Callable[[str], None] = lambda rule_id: None,
) -> Callable[[Transaction, Mapping[str, float], float, Mapping[str, Sequence[str]]], RuleResult]:
    """What the scorer calls: the current rule set (``book()``) over one transaction.

    With no enabled rule nothing is built (the context costs ~5 µs a transaction).
    """

    def check(
        tx: Transaction,
        features: Mapping[str, float],
        score: float,
        hits: Mapping[str, Sequence[str]],
    ) -> RuleResult:
        current = book()
        if not len(current):
            return RuleResult()
        outcome = current.evaluate(rules.context(tx, features, score, hits))
        for rule_id in outcome.errors:
            on_error(rule_id)
        for rule_id in outcome.shadow:
            on_shadow(rule_id)
        reasons = tuple(
            Reason(code=code, feature=f"rule:{rule_id}", value=1.0)
            for code, rule_id in outcome.reasons
        )
        return RuleResult(outcome.decision, outcome.rule_id, reasons, outcome.shadow)

    return check
