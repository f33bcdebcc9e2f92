"""Core: what a rule costs, measured on worst-case inputs at save time, in a child process.

The static checks (:mod:`app.core.rule_check`) bound a rule's shape; this measures it. A rule
is evaluated on the type probes and on worst-case contexts (the longest strings, every list
kind), each context timed ``REPEAT`` times and its fastest run kept (a pre-empted run says
nothing of the rule); the rule's cost is the slowest context's. A rule over its ``cap_us``
is refused as soon as one context shows it.

Measuring runs the rule hundreds of times, and a CPU-bound loop in this process would stall
the event loop that scores (a thread would too: the engine holds the GIL), and a runaway
rule could not be stopped. So :class:`ProcessProber` runs :func:`measure` in a child process
(JSON on stdin and stdout) and kills it at a deadline.

>>> from app.core.rules import VARIABLES
>>> costs = measure(['amount > 1.0'], VARIABLES, max_length=1_000, caps_us=[200.0])
>>> 0 < costs[0]["cost_us"] < 200
True
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cel

from app.core.rule_check import RuleError, VarType, check, probes, problem

REPEAT = 3
#: Values that make an evaluation as long as it gets: the longest identifiers (64 characters),
#: every list kind; numbers at both ends.
WORST: dict[str, tuple[Any, ...]] = {
    "double": (1e9, -1e9),
    "int": (23, 0),
    "string": ("9" * 64, "a" * 64),
    "list": (["allow", "block", "watch"],),
}
Clock = Callable[[], float]
#: The child's program. ``import cel`` also imports the library's REPL (prompt_toolkit: about
#: 1 s of a loaded machine's CPU); the child needs only the engine, so the REPL is stubbed.
_CHILD = (
    "import sys, types; sys.modules['cel.cli'] = types.ModuleType('cel.cli'); "
    f"from {__name__} import main; main()"
)


@dataclass(frozen=True, slots=True)
class CostBudget:
    """What a rule may cost per transaction, measured at save time (µs; docs/rules.md)."""

    rule_us: float = 200.0  # one rule, its worst case
    total_us: float = 800.0  # the enabled rules together (headroom: see docs/rules.md)
    check_seconds: float = 5.0  # the time limit of the measurement (a child: ~0.35 s)


def worst_contexts(
    names: Sequence[str], variables: Mapping[str, VarType]
) -> Iterator[dict[str, Any]]:
    """The type probes, then contexts of the costliest values of each type."""
    yield from probes(names, variables)
    for i in range(2):
        yield {n: WORST[variables[n]][i % len(WORST[variables[n]])] for n in names}


def cost_us(
    program: cel.Program,
    names: Sequence[str],
    variables: Mapping[str, VarType],
    cap_us: float,
    clock: Clock = time.perf_counter,
    deadline: float = float("inf"),
) -> float:
    """The worst context's fastest evaluation, in µs; it stops once past ``cap_us``, and
    raises TimeoutError past ``deadline`` (``time.monotonic``)."""
    worst = 0.0
    for ctx in worst_contexts(names, variables):
        env = cel.Context()
        env.set_variable_resolver(ctx.get)  # as the scoring path evaluates
        best = float("inf")
        for _ in range(REPEAT):
            began = clock()
            with contextlib.suppress(Exception):  # a runtime error costs what it cost
                program.execute(env)
            best = min(best, (clock() - began) * 1e6)
        worst = max(worst, best)
        if worst > cap_us:
            break
        if time.monotonic() > deadline:
            raise TimeoutError
    return worst


def measure(
    expressions: Sequence[str],
    variables: Mapping[str, VarType],
    *,
    max_length: int,
    caps_us: Sequence[float],
    seconds: float = float("inf"),
) -> list[dict[str, Any]]:
    """Per expression: ``{"cost_us": worst}``, or ``{"errors": [...]}`` when it is invalid."""
    deadline = time.monotonic() + seconds
    out: list[dict[str, Any]] = []
    for expression, cap in zip(expressions, caps_us, strict=True):
        try:
            program = check(expression, variables, max_length=max_length)
        except RuleError as exc:
            out.append({"errors": exc.errors})
            continue
        names = sorted(n for n in program.variables() if n in variables)
        try:
            out.append({"cost_us": cost_us(program, names, variables, cap, deadline=deadline)})
        except TimeoutError:
            out.append({"errors": _too_slow(seconds).errors})
    return out


class ProcessProber:
    """Runs :func:`measure` in a child process, killed after ``seconds``."""

    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = seconds

    async def measure(
        self,
        expressions: Sequence[str],
        variables: Mapping[str, VarType],
        *,
        max_length: int,
        caps_us: Sequence[float],
    ) -> list[dict[str, Any]]:
        request = {
            "expressions": list(expressions),
            "variables": dict(variables),
            "max_length": max_length,
            "caps_us": list(caps_us),
            "seconds": self.seconds,
        }
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHILD,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            async with asyncio.timeout(self.seconds):  # not wait_for: it can eat a cancel
                out, _ = await child.communicate(json.dumps(request).encode())
        except TimeoutError:
            raise _too_slow(self.seconds) from None
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        if child.returncode != 0:
            raise _too_slow(self.seconds)
        results: list[dict[str, Any]] = json.loads(out)
        return results


def _too_slow(seconds: float) -> RuleError:
    return problem(
        ("body", "expression"),
        "too_costly",
        f"the rule could not be measured within {seconds:g} s; write it more simply",
    )


def main() -> None:
    """The child: a request on stdin, the results on stdout."""
    request = json.loads(sys.stdin.buffer.read())
    results = measure(
        request["expressions"],
        request["variables"],
        max_length=request["max_length"],
        caps_us=request["caps_us"],
        seconds=request["seconds"],
    )
    sys.stdout.write(json.dumps(results))
