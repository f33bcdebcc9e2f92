"""Core (pure): the constants a rule computes, so that no card number hides in one.

A rule is stored, audited and listed, so a card number has no place in it — and the text
check alone (a Luhn-valid 13–19 digit run in the expression) misses one written in pieces:
``"411111" + "1111111111"``, ``string(4111111) + string(111111111)``, ``"\\x34111..."``,
``int("41111111") * 100000000 + 11111111``. Rather than forbid concatenating digits (a
rule has no honest use for it, but the line between "digits" and "text" is fuzzy), every
sub-expression without a variable is folded the way the engine would compute it — strings
decoded, ``+ - * / %``, unary minus, ``string``, ``int`` and ``double`` — and every value
this yields, and every run of adjacent constant strings in a ``+`` chain (``card_id +
"4111..." + "...1111"``), is checked for a card number.

>>> from app.core.cel_tree import parse
>>> pan_constant(parse('"411111" + "1111111111" == card_id'))
True
>>> pan_constant(parse('card_id + "4111111" + "111111111" == "x"'))
True
>>> pan_constant(parse('amount > 1000.0 * 1000.0'))
False
"""

from __future__ import annotations

import re
from typing import Any

from app.core.cel_tree import Call, ListLit, Lit, Node, children
from features.pan import looks_like_pan

_NOT = object()  # not a constant
_INT64 = 2**63


def pan_constant(tree: Node) -> bool:
    """True when a constant of ``tree`` (folded) holds what looks like a card number."""
    found: list[Any] = []
    _fold(tree, found)
    return any(looks_like_pan(_digits(value)) for value in found)


def _digits(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e20:
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def _fold(node: Node, found: list[Any], in_chain: bool = False) -> Any:
    """The constant value of ``node`` (every constant met is appended to ``found``)."""
    chain = isinstance(node, Call) and node.name == "_+_" and node.target is None
    values = [
        _fold(child, found, in_chain=chain and i == 0) for i, child in enumerate(children(node))
    ]
    if isinstance(node, Call) and chain and not in_chain:  # the whole chain once, at its root
        found.extend(_string_runs(node))
    value = _value(node, values)
    if value is not _NOT and not isinstance(value, bool | list | type(None)):
        found.append(value)
    return value


def _value(node: Node, values: list[Any]) -> Any:
    if isinstance(node, Lit):
        return node.value
    if any(v is _NOT for v in values):
        return _NOT
    if isinstance(node, ListLit):
        return values
    if isinstance(node, Call) and node.target is None:
        try:
            return _compute(node.name, values)
        except (ArithmeticError, ValueError, TypeError):
            return _NOT
    return _NOT


def _compute(name: str, args: list[Any]) -> Any:
    if len(args) == 1:
        (x,) = args
        if name == "-_" and _numeric(x):
            return _bounded(-x)
        if name == "string" and isinstance(x, str | int | float) and not isinstance(x, bool):
            return str(x)
        if name == "int" and isinstance(x, str) and re.fullmatch(r"-?\d+", x):
            return _bounded(int(x))
        if name in ("int", "double") and _numeric(x):
            return _bounded(int(x)) if name == "int" else float(x)
        return _NOT
    if len(args) != 2 or type(args[0]) is not type(args[1]):
        return _NOT  # CEL does not mix types in arithmetic
    x, y = args
    if name == "_+_" and isinstance(x, str | list):
        return x + y
    if not _numeric(x):
        return _NOT
    if name in ("_/_", "_%_") and isinstance(x, int):  # CEL truncates toward zero
        quotient = abs(x) // abs(y) * (1 if (x >= 0) == (y >= 0) else -1)
        return quotient if name == "_/_" else x - quotient * y
    operations = {"_+_": x + y, "_-_": x - y, "_*_": x * y} if name != "_/_" else {"_/_": x / y}
    return _bounded(operations[name]) if name in operations else _NOT


def _numeric(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _bounded(x: Any) -> Any:
    """``x``, or not a constant when it leaves the engine's 64-bit integers (an error there)."""
    return _NOT if isinstance(x, int) and not -_INT64 <= x < _INT64 else x


def _string_runs(node: Call) -> list[str]:
    """Each run of adjacent constant strings of the ``+`` chain rooted at ``node``."""
    operands: list[Node] = []
    stack: list[Node] = [node]
    while stack:  # flatten left-nested a + b + c, in order
        current = stack.pop()
        if isinstance(current, Call) and current.name == "_+_" and current.target is None:
            stack.extend(reversed(current.args))
        else:
            operands.append(current)
    runs, run = [], ""
    for operand in operands:
        value = _fold(operand, [])
        if isinstance(value, str):
            run += value
        else:
            runs.append(run)
            run = ""
    return [*runs, run]
