"""Rules (unit, no servers): validation at save time, rule-set semantics, context, rules file."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.core.rule_check import RuleError
from app.core.rulebook import RuleBook, RuleFileError, diff, parse_file
from app.core.rules import VARIABLES, Rule, RuleSet, compile_rule, context
from features import definitions
from features.schema import Transaction

PAN = "4111111111111111"
#: 16 digits failing Luhn: not refused as a card number, so it reaches the CEL checks
DIGITS = "4111111111111112"


def rule(expression: str, action: str = "review", **extra: object) -> Rule:
    fields: dict[str, object] = {"id": "r1", "name": "r", "action": action, **extra}
    return Rule(expression=expression, **fields)  # type: ignore[arg-type]


GOOD = [
    'amount > 1000.0 && channel == "ecom"',
    "amount > 1000",  # comparisons mix int and double
    "card_age_seconds < 3600.0 && score > 0.8",
    '"block" in card_lists || "watch" in merchant_lists',
    'card_lists.exists(kind, kind == "watch")',
    "hour_of_day >= 0 && hour_of_day < 6",
    'country != "" && !(country in ["FR", "DE"])',
    'merchant_category.startsWith("59") && size(device_id) == 0',
    "true",
]
BAD = [
    ('amount > "x"', "rule_type"),
    ("country > 3", "rule_type"),
    ("hour_of_day + 1.5 > 2.0", "rule_type"),  # int + double: no overload
    ("score > 0.5 || country > 3", "rule_type"),  # only reached when the left side is false
    ('channel == "pos" ? amount > 1.0 : amount > "x"', "rule_type"),  # the other branch
    ("card_velocity_2h > 3.0", "unknown_variable"),  # no such feature
    ('__import__("os")', "unknown_function"),
    ('country.matches("^F")', "unknown_function"),
    ("amount +", "rule_syntax"),
    ("amount > 1 &&& 2", "rule_syntax"),
    ("   ", "rule_syntax"),
    ("amount", "not_boolean"),
    ("amount * 2.0", "not_boolean"),
    ("1 / 0 == 1", "rule_runtime"),
    ("(" * 13 + "true" + ")" * 13, "too_deep"),
    ("[1].exists(a, a > 0) && [2].all(b, b > 0)", "too_complex"),
    ("amount > 1.0 && " * 70 + "true", "too_long"),
]


@pytest.mark.parametrize("expression", GOOD)
def test_good_rules_compile(expression: str) -> None:
    assert compile_rule(rule(expression)).rule.expression == expression


@pytest.mark.parametrize(("expression", "kind"), BAD)
def test_bad_rules_are_refused_with_a_type(expression: str, kind: str) -> None:
    with pytest.raises(RuleError) as caught:
        compile_rule(rule(expression))
    (error,) = caught.value.errors
    assert error["type"] == kind
    assert error["loc"] == ["body", "expression"]
    assert expression.strip() not in error["msg"] or not expression.strip()


def test_errors_never_echo_the_expression() -> None:
    """A card number inside a bad rule (or in any part of one) is not in the error."""
    for expression, kind in (
        (f'card_id == "{DIGITS}" &&', "rule_syntax"),  # the engine's message quotes the source
        (f'amount > "{DIGITS}"', "rule_type"),
        (f"card{DIGITS} > 1.0", "unknown_variable"),
        (f"pan{DIGITS}(1)", "unknown_function"),
        (f'card_id == "{PAN}"', "pan_rejected"),
    ):
        with pytest.raises(RuleError) as caught:
            compile_rule(rule(expression))
        assert caught.value.errors[0]["type"] == kind
        text = repr(caught.value.errors) + str(caught.value)
        assert PAN not in text and DIGITS not in text and DIGITS[:6] not in text


def test_a_card_number_is_never_stored_in_a_rule() -> None:
    with pytest.raises(RuleError) as caught:
        rule(f'merchant_id == "{PAN}"')
    assert caught.value.errors[0]["type"] == "pan_rejected"
    assert PAN not in str(caught.value.errors)


def test_the_syntax_error_position_is_kept() -> None:
    with pytest.raises(RuleError) as caught:
        compile_rule(rule("amount > 1 &&& 2"))
    assert caught.value.errors[0]["column"] == 14


def test_ids_codes_and_defaults() -> None:
    assert rule("true", id="big-ecom").reason_code == "rule_big_ecom"
    assert rule("true", reason_code="velocity").reason_code == "velocity"
    for bad in ({"id": "Big"}, {"id": "-x"}, {"reason_code": "a-b"}, {"action": "allow"}):
        with pytest.raises(RuleError):
            rule("true", **bad)


def test_variables_cover_every_feature_and_the_transaction() -> None:
    assert set(definitions.FEATURE_NAMES) < set(VARIABLES)
    assert VARIABLES["hour_of_day"] == "int" and VARIABLES["amount"] == "double"
    assert VARIABLES["card_lists"] == "list" and VARIABLES["score"] == "double"


def ruleset(*rules: Rule) -> RuleSet:
    return RuleSet([compile_rule(r) for r in rules])


def test_first_decision_by_priority_then_id_and_every_reason() -> None:
    rules = ruleset(
        rule("amount > 10.0", "review", id="b-review", priority=5),
        rule("amount > 10.0", "decline", id="a-decline", priority=5),
        rule("amount > 10.0", "approve", id="late-approve", priority=9),
        rule("amount > 10.0", "reason", id="note", priority=20, reason_code="big"),
        rule("amount > 99.0", "reason", id="never", priority=1),
        rule("amount > 10.0", "decline", id="off", priority=0, enabled=False),
    )
    outcome = rules.evaluate({"amount": 50.0})
    assert (outcome.decision, outcome.rule_id) == ("decline", "a-decline")
    assert outcome.reasons == (("rule_a_decline", "a-decline"), ("big", "note"))
    assert outcome.errors == ()
    assert len(rules) == 5
    nothing = rules.evaluate({"amount": 1.0})
    assert (nothing.decision, nothing.rule_id, nothing.reasons) == (None, None, ())


def test_reason_rules_alone_decide_nothing() -> None:
    outcome = ruleset(rule("score > 0.5", "reason", reason_code="high")).evaluate({"score": 0.9})
    assert (outcome.decision, outcome.reasons) == (None, (("high", "r1"),))


def test_a_runtime_error_is_no_match_and_is_reported() -> None:
    rules = ruleset(
        rule('card_lists[0] == "block"', "decline", id="first-list", priority=1),
        rule("1 / hour_of_day > 0", "review", id="div", priority=2),
        rule("amount > 1.0", "approve", id="fallback", priority=3),
    )
    outcome = rules.evaluate({"card_lists": [], "hour_of_day": 0, "amount": 5.0})
    assert outcome.errors == ("first-list", "div")
    assert (outcome.decision, outcome.rule_id) == ("approve", "fallback")
    missing = rules.evaluate({})  # a variable absent from the context: an error, not a raise
    assert missing.decision is None and len(missing.errors) == 3


def test_context_from_a_transaction() -> None:
    tx = Transaction(
        transaction_id="t1",
        card_id="c1",
        merchant_id="m1",
        amount=Decimal("12.5"),
        currency="EUR",
        timestamp=datetime(2026, 1, 5, 23, 30, tzinfo=UTC),
        channel="ecom",
    )
    ctx = context(tx, {"card_age_seconds": 7}, 0.25, {"card": ["block"], "country": ()})
    assert ctx["amount"] == 12.5 and ctx["hour_of_day"] == 23 and ctx["score"] == 0.25
    assert ctx["country"] == "" and ctx["device_id"] == "" and ctx["channel"] == "ecom"
    assert isinstance(ctx["card_age_seconds"], float)
    assert ctx["card_lists"] == ["block"] and ctx["merchant_lists"] == []
    rules = ruleset(rule('"block" in card_lists && hour_of_day == 23 && country == ""'))
    assert rules.evaluate(ctx).decision == "review"


def test_diff_names_only_changed_fields() -> None:
    old, new = rule("amount > 1.0"), rule("amount > 2.0", priority=7)
    assert diff(old, new) == {"expression": ["amount > 1.0", "amount > 2.0"], "priority": [100, 7]}
    assert diff(None, old)["id"] == [None, "r1"]
    assert diff(old, None)["action"] == ["review", None]


def test_rules_file_parsing_names_the_rule_and_the_error() -> None:
    book = RuleBook(store=None)  # type: ignore[arg-type]
    good = b'[{"id": "a", "expression": "amount > 1.0", "action": "review"}]'
    assert [r.id for r in parse_file(good, "rules.json", book)] == ["a"]
    bad_type = b'[{"id": "big", "expression": "country > 3", "action": "review"}]'
    with pytest.raises(RuleFileError, match=r"json: rule 'big' \(#1\): expression: rule_type"):
        parse_file(bad_type, "rules.json", book)
    extra = b'[{"id": "x", "expression": "true", "action": "review", "when": 1}]'
    with pytest.raises(RuleFileError, match="extra_forbidden"):
        parse_file(extra, "rules.json", book)
    twice = b'[{"id": "a", "expression": "true", "action": "reason"}] '
    with pytest.raises(RuleFileError, match="duplicate_id"):
        parse_file(twice.replace(b"]", b", " + twice.strip()[1:]), "r.json", book)
    with pytest.raises(RuleFileError, match="not valid JSON"):
        parse_file(b"{", "r.json", book)
    pan = f'[{{"id": "p", "expression": "card_id == \\"{PAN}\\"", "action": "review"}}]'
    with pytest.raises(RuleFileError) as caught:
        parse_file(pan.encode(), "r.json", book)
    assert PAN not in str(caught.value) and "pan_rejected" in str(caught.value)
