"""Core (pure): is a rule expression valid, cheap and boolean? Checked when it is saved.

A rule is a CEL expression (``common-expression-language``, import name ``cel``). The library
compiles and evaluates but exposes neither a syntax tree nor a type checker, so the checks
read the tree of :mod:`app.core.cel_tree` (a lexer and parser of the CEL rules use that
knows comments, strings and escapes) and run in steps:

1. :func:`check_static` — cheap, no evaluation (what every process runs when rules change):
   at most ``max_length`` characters; brackets and ``?:`` nested at most :data:`MAX_DEPTH`
   deep; at most :data:`MAX_MACROS` comprehension macro (``exists``, ``all``, ...), whose
   variable must not rebind a declared variable; list and map literals of at most
   :data:`MAX_ITEMS` items; an estimated cost (nodes evaluated, a macro's body once per
   item of its range) of at most :data:`MAX_COST`; every function one of :data:`FUNCTIONS`
   (operators aside) and every free variable a declared one; then ``cel.compile``, and the names the
   library reports for the program must be the names of the tree (else the two parsers
   disagree, and the rule is refused);
2. :func:`check` adds types, by probing: the program is evaluated over contexts holding
   values of the declared types — several per variable (zero, negative, large, empty and
   non-empty strings and lists) so that both sides of ``&&``, ``||`` and ``?:`` are reached
   — up to every combination for a rule of few variables. A ``No such overload``
   (TypeError) is a type error, any result that is not a bool is ``not_boolean``, and a
   rule that fails on every probe is refused. (Its cost is then measured on worst-case
   inputs, off the event loop: :mod:`app.core.rule_cost`.)

Errors never carry the expression or a part of it (a rule may hold a card number): the
library's own messages echo the source, so only their line and column are kept.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import cel

from app.core import cel_tree
from app.core.cel_tree import Call, Ident, ListLit, Macro, MapLit, Node

VarType = Literal["double", "int", "string", "list"]
MAX_DEPTH = 12
#: Operators chained (``a && b && ...`` nests to the left): far beyond any real rule.
MAX_TREE_DEPTH = 200
MAX_MACROS = 1
MAX_ITEMS = 100
#: Nodes evaluated, a macro's body counted once per item of its range: ~0.1 µs each.
MAX_COST = 5_000
#: Items assumed in a list variable (``card_lists``: allow, block, watch) for the estimate.
LIST_VARIABLE_ITEMS = 8
MAX_PROBES = 256
#: Named functions a rule may call. ``matches`` is left out on purpose: the engine compiles its
#: regular expression on every evaluation (hundreds of µs for a modest pattern); ``timestamp``,
#: ``duration``, ``type`` and ``dyn`` have no use on these variables.
FUNCTIONS = frozenset({"size", "contains", "startsWith", "endsWith", "int", "double", "string"})
#: The engine's names of operators (``_&&_``) and of the helpers its macros expand into.
OPERATORS = frozenset(
    {
        *(f"_{op}_" for op in ("+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=")),
        *("_&&_", "_||_", "!_", "-_", "_?_:_", "_[_]", "@in", "@not_strictly_false"),
    }
)
MACROS = tuple(cel_tree.MACROS)
_POSITION = re.compile(r"<input>:(\d+):(\d+):")
#: Values each declared type is probed with: edges of the range, signs, emptiness.
PROBE_VALUES: dict[str, tuple[Any, ...]] = {
    "double": (0.0, 1.0, -1.0, 0.5, 1e9),
    "int": (0, 1, 12, 23),
    "string": ("", "a", "FR", "5411"),
    "list": ((), ("block",), ("allow", "watch")),
}


class RuleError(ValueError):
    """A rule that cannot be saved; ``errors`` are Problem entries (loc, type, msg)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in errors))
        self.errors = errors


def problem(loc: Sequence[str | int], kind: str, msg: str, **extra: int) -> RuleError:
    return RuleError([{"loc": [str(part) for part in loc], "type": kind, "msg": msg, **extra}])


def check(
    expression: str,
    variables: Mapping[str, VarType],
    *,
    max_length: int,
    loc: Sequence[str | int] = ("body", "expression"),
) -> cel.Program:
    """The compiled program of a valid rule expression (types probed), else :class:`RuleError`."""
    program = check_static(expression, variables, max_length=max_length, loc=loc)
    _check_types(program, variables, loc)
    return program


def check_static(
    expression: str,
    variables: Mapping[str, VarType],
    *,
    max_length: int,
    loc: Sequence[str | int] = ("body", "expression"),
) -> cel.Program:
    """The compiled program when the tree passes every check that needs no evaluation."""
    if len(expression) > max_length:
        raise problem(loc, "too_long", f"a rule has at most {max_length} characters")
    if not expression.strip():
        raise problem(loc, "rule_syntax", "the rule is empty")
    try:
        tree = cel_tree.parse(expression, MAX_DEPTH)
    except cel_tree.ParseError as exc:
        if exc.kind == "too_deep":
            raise problem(loc, "too_deep", f"a rule nests at most {MAX_DEPTH} deep") from None
        where = _at(expression, exc.pos)
        raise problem(loc, "rule_syntax", "the rule is not valid CEL", **where) from None
    if cel_tree.depth(tree) > MAX_TREE_DEPTH:  # before any recursion over it, ours or the engine's
        raise problem(loc, "too_deep", f"a rule chains at most {MAX_TREE_DEPTH} operations")
    _check_tree(tree, expression, variables, loc)
    try:
        program = cel.compile(expression)
    except Exception as exc:  # ValueError; its message echoes the source
        raise problem(loc, "rule_syntax", "the rule is not valid CEL", **_position(exc)) from None
    _check_agreement(tree, program, loc)
    return program


def _at(expression: str, offset: int) -> dict[str, int]:
    """1-based line and column of ``offset``."""
    line = expression.count("\n", 0, offset) + 1
    return {"line": line, "column": offset - (expression.rfind("\n", 0, offset) + 1) + 1}


def _check_tree(
    tree: Node, expression: str, variables: Mapping[str, VarType], loc: Sequence[str | int]
) -> None:
    macros = [node for node in cel_tree.walk(tree) if isinstance(node, Macro)]
    if len(macros) > MAX_MACROS:
        raise problem(
            loc, "too_complex", f"a rule uses at most {MAX_MACROS} macro (exists, all, ...)",
            **_at(expression, macros[MAX_MACROS].pos),
        )  # fmt: skip
    for macro in macros:
        if macro.var in variables or macro.var in FUNCTIONS:
            raise problem(
                loc, "rebound_variable",
                "a macro's variable must be a new name, not one of the rule variables",
                **_at(expression, macro.pos),
            )  # fmt: skip
    for node in cel_tree.walk(tree):
        if isinstance(node, ListLit | MapLit) and len(node.items) > MAX_ITEMS * (
            2 if isinstance(node, MapLit) else 1
        ):
            raise problem(
                loc, "too_large", f"a list or map written in a rule has at most {MAX_ITEMS} items",
                **_at(expression, node.pos),
            )  # fmt: skip
        if isinstance(node, Call) and node.name not in FUNCTIONS | OPERATORS:
            raise problem(
                loc, "unknown_function",
                "the rule calls a function rules may not use (see docs/rules.md)",
                **_at(expression, node.pos),
            )  # fmt: skip
    for ident in _free(tree, frozenset()):
        if ident.name not in variables:
            raise problem(
                loc, "unknown_variable",
                "the rule names a variable that does not exist (see docs/rules.md)",
                **_at(expression, ident.pos),
            )  # fmt: skip
    if cost(tree, variables) > MAX_COST:
        raise problem(loc, "too_costly", "the rule would cost too much on every transaction")


def _free(node: Node, bound: frozenset[str]) -> Iterator[Ident]:
    """The identifiers of ``node`` not bound by an enclosing macro."""
    if isinstance(node, Ident):
        if node.name not in bound:
            yield node
        return
    if isinstance(node, Macro):
        yield from _free(node.target, bound)
        for body in node.body:
            yield from _free(body, bound | {node.var})
        return
    for child in cel_tree.children(node):
        yield from _free(child, bound)


def cost(node: Node, variables: Mapping[str, VarType]) -> int:
    """An upper estimate of the nodes one evaluation visits (a macro's body once per item)."""
    if isinstance(node, Macro):
        body = sum(cost(b, variables) for b in node.body)
        return cost(node.target, variables) + _items(node.target, variables) * (1 + body)
    return 1 + sum(cost(child, variables) for child in cel_tree.children(node))


def _items(node: Node, variables: Mapping[str, VarType]) -> int:
    """At most how many items the list ``node`` holds (for a macro's range)."""
    if isinstance(node, ListLit):
        return len(node.items)
    if isinstance(node, MapLit):
        return len(node.items) // 2
    if isinstance(node, Ident) and variables.get(node.name) == "list":
        return LIST_VARIABLE_ITEMS
    if isinstance(node, Call) and node.name == "_+_":
        return sum(_items(arg, variables) for arg in node.args)
    return MAX_ITEMS


def _check_agreement(tree: Node, program: cel.Program, loc: Sequence[str | int]) -> None:
    """The library's names of the program must be the tree's: else the parsers disagree."""
    nodes = list(cel_tree.walk(tree))
    ours = {n.name for n in nodes if isinstance(n, Call) and n.name not in OPERATORS}
    named = {name for name in program.functions() if name not in OPERATORS}
    idents = {n.name for n in nodes if isinstance(n, Ident)}
    bound = {n.var for n in nodes if isinstance(n, Macro)}
    library = set(program.variables())
    if ours != named or not idents <= library <= idents | bound:
        raise problem(loc, "rule_syntax", "the rule could not be analysed: write it more plainly")


def _position(exc: Exception) -> dict[str, int]:
    found = _POSITION.search(str(exc))
    return {} if found is None else {"line": int(found[1]), "column": int(found[2])}


def probes(names: Sequence[str], variables: Mapping[str, VarType]) -> Iterator[dict[str, Any]]:
    """Contexts over ``names``: every combination of their probe values, or a seeded sample."""
    pools = [[_value(v) for v in PROBE_VALUES[variables[name]]] for name in names]
    total = 1
    for pool in pools:
        total *= len(pool)
    if total <= MAX_PROBES:
        for combo in itertools.product(*pools):
            yield dict(zip(names, combo, strict=True))
        return
    rng = random.Random(0)  # probes, not secrets
    width = max(len(pool) for pool in pools)
    for i in range(width):  # all-first, all-second, ...: every value of every variable
        yield {name: pool[i % len(pool)] for name, pool in zip(names, pools, strict=True)}
    for _ in range(MAX_PROBES - width):
        yield {name: rng.choice(pool) for name, pool in zip(names, pools, strict=True)}


def _value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _check_types(
    program: cel.Program, variables: Mapping[str, VarType], loc: Sequence[str | int]
) -> None:
    names = sorted(n for n in program.variables() if n in variables)
    failed = ran = 0
    for ctx in probes(names, variables):
        ran += 1
        try:
            result = program.execute(ctx)
        except TypeError:
            raise problem(
                loc,
                "rule_type",
                "the rule combines values of types that do not go together (a number with a "
                "string, an int with a double in arithmetic: write 100.0, not 100)",
            ) from None
        except Exception:  # index out of range, division by zero: runtime
            failed += 1
            continue
        if not isinstance(result, bool):
            raise problem(loc, "not_boolean", "the rule must be a condition (true or false)")
    if failed == ran:
        raise problem(loc, "rule_runtime", "the rule fails on every probe input")
