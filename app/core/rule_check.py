"""Core (pure): is a rule expression valid, cheap and boolean? Checked once, when it is saved.

A rule is a CEL expression (``common-expression-language``, import name ``cel``). The library
compiles and evaluates but has no type checker, so :func:`check` does it in steps:

1. size: at most ``max_length`` characters, brackets nested at most :data:`MAX_DEPTH` deep and
   at most :data:`MAX_MACROS` comprehension macros (``exists``, ``all``, ...): a rule runs on
   every transaction, and a nested comprehension over literal lists costs milliseconds;
2. syntax (``cel.compile``);
3. names: every function must be one of :data:`FUNCTIONS` (operators aside) and every variable
   one of the declared ones (or the variable a macro binds);
4. types, by probing: the program is evaluated over contexts holding values of the declared
   types — several per variable (zero, negative, large, empty and non-empty strings and lists)
   so that both sides of ``&&``, ``||`` and ``?:`` are reached — up to every combination for a
   rule of few variables. A ``No such overload`` (TypeError) is a type error, any result that
   is not a bool is ``not_boolean``, and a rule that fails on every probe is refused.

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

VarType = Literal["double", "int", "string", "list"]
MAX_DEPTH = 12
MAX_MACROS = 1
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
MACROS = ("all", "exists", "exists_one", "map", "filter")
_MACRO_CALL = re.compile(r"\.\s*(?:" + "|".join(MACROS) + r")\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)")
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
    """The compiled program of a valid rule expression, else :class:`RuleError`."""
    if len(expression) > max_length:
        raise problem(loc, "too_long", f"a rule has at most {max_length} characters")
    if not expression.strip():
        raise problem(loc, "rule_syntax", "the rule is empty")
    code = blank_strings(expression)
    _check_shape(code, loc)
    try:
        program = cel.compile(expression)
    except Exception as exc:  # ValueError; its message echoes the source
        raise problem(loc, "rule_syntax", "the rule is not valid CEL", **_position(exc)) from None
    _check_names(program, code, variables, loc)
    _check_types(program, variables, loc)
    return program


def blank_strings(expression: str) -> str:
    """The expression with the content of every string literal blanked (same length)."""
    out, i, n = list(expression), 0, len(expression)
    while i < n:
        ch = expression[i]
        if ch not in "'\"":
            i += 1
            continue
        raw = i > 0 and expression[i - 1] in "rR"
        quote = ch * 3 if expression.startswith(ch * 3, i) else ch
        j = i + len(quote)
        while j < n and not expression.startswith(quote, j):
            j += 2 if expression[j] == "\\" and not raw else 1
        for k in range(i + len(quote), min(j, n)):
            out[k] = " "
        i = j + len(quote)
    return "".join(out)


def _check_shape(code: str, loc: Sequence[str | int]) -> None:
    depth = deepest = 0
    for ch in code:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    if deepest > MAX_DEPTH:
        raise problem(loc, "too_deep", f"brackets nest at most {MAX_DEPTH} deep in a rule")
    if len(_MACRO_CALL.findall(code)) > MAX_MACROS:
        raise problem(
            loc, "too_complex", f"a rule uses at most {MAX_MACROS} macro (exists, all, ...)"
        )


def _column_of(code: str, name: str, call: bool) -> dict[str, int]:
    pattern = rf"(?<![A-Za-z0-9_.]){re.escape(name)}\b" + (r"\s*\(" if call else "")
    found = re.search(pattern, code) or re.search(rf"\b{re.escape(name)}\b", code)
    return {} if found is None else {"column": found.start() + 1}


def _position(exc: Exception) -> dict[str, int]:
    found = _POSITION.search(str(exc))
    return {} if found is None else {"line": int(found[1]), "column": int(found[2])}


def _check_names(
    program: cel.Program, code: str, variables: Mapping[str, VarType], loc: Sequence[str | int]
) -> None:
    for name in program.functions():
        if name not in FUNCTIONS and name not in OPERATORS:
            raise problem(
                loc,
                "unknown_function",
                "the rule calls a function rules may not use (see docs/rules.md)",
                **_column_of(code, name, call=True),
            )
    bound = set(_MACRO_CALL.findall(code))
    for name in program.variables():
        if name not in variables and name not in bound:
            raise problem(
                loc,
                "unknown_variable",
                "the rule names a variable that does not exist (see docs/rules.md)",
                **_column_of(code, name, call=False),
            )


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
