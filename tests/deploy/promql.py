"""The PromQL of the monitoring files, and a small lexer to read metric names out of it.

Shared by tests/deploy/test_monitoring.py (static checks) and tests/e2e/test_prometheus.py
(every expression evaluated by a live Prometheus). No PromQL parser ships in Python, so this
lexer knows just enough: strings, label matchers ``{...}``, ranges ``[...]``, grouping label
lists after ``by``/``on``/``ignoring``/..., function calls and keywords.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARDS_DIR = ROOT / "deploy" / "grafana" / "dashboards"

# What Grafana substitutes before sending a query; the values are what the tests send instead.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"} | GROUPING
AGGREGATORS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"[0-9.]+(?:[eE][+-]?[0-9]+)?[A-Za-z0-9]*")
_CLOSING = {"{": "}", "[": "]", '"': '"', "'": "'", "`": "`"}


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of deploy/prometheus/alerts.yml."""
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def _exprs_in(node: Any, title: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        title = str(node.get("title") or node.get("name") or title)
        if isinstance(node.get("expr"), str):
            yield title, node["expr"]
        for value in node.values():
            yield from _exprs_in(value, title)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs_in(item, title)


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, expr) for every panel target and annotation query of every dashboard."""
    return [
        (f"{name}: {title}", expr)
        for name, board in dashboards().items()
        for title, expr in _exprs_in(board, name)
    ]


def all_exprs() -> list[tuple[str, str]]:
    """Dashboard queries (Grafana variables substituted) and alert expressions."""
    found = [(where, substitute(expr)) for where, expr in dashboard_exprs()]
    found += [(f"alerts.yml/{rule['alert']}", rule["expr"]) for rule in alert_rules()]
    return found


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def _skip_enclosed(expr: str, start: int) -> int:
    """Index just past the bracket or string opening at ``start``."""
    closing = _CLOSING[expr[start]]
    i = start + 1
    while i < len(expr) and expr[i] != closing:
        i += 2 if expr[i] == "\\" and closing in "\"'" else 1
        if closing in "}]" and i < len(expr) and expr[i] in "\"'`":
            i = _skip_enclosed(expr, i)
    return i + 1


def _next_char(expr: str, i: int) -> str:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return expr[i] if i < len(expr) else ""


def _skip_label_list(expr: str, i: int) -> int:
    """Past the ``(a, b)`` after a grouping keyword (``group_left`` may have none)."""
    while i < len(expr) and expr[i].isspace():
        i += 1
    if i < len(expr) and expr[i] == "(":
        return expr.index(")", i) + 1
    return i


def metric_names(expr: str) -> set[str]:
    """Names of the series an expression selects.

    >>> sorted(metric_names('sum by (topic) (rate(a_total{x="b_c"}[5m])) / on (t) c offset 1h'))
    ['a_total', 'c']
    """
    names: set[str] = set()
    i = 0
    while i < len(expr):
        char = expr[i]
        if char in _CLOSING:
            i = _skip_enclosed(expr, i)
        elif match := _IDENT.match(expr, i):
            word, i = match.group(), match.end()
            if word in GROUPING:
                i = _skip_label_list(expr, i)
            elif word not in KEYWORDS and word not in AGGREGATORS and _next_char(expr, i) != "(":
                names.add(word)
        elif match := _NUMBER.match(expr, i):
            i = match.end()
        else:
            i += 1
    return names


def comparisons_as_bool(expr: str) -> str:
    """Every comparison turned into its ``bool`` form, which returns 0/1 instead of filtering.

    An alert whose condition is false has no data; its ``bool`` form still has a sample for
    every series the condition looks at, so "returns data" then means "every input exists".

    >>> comparisons_as_bool('a{x!="y"} > 0.5 and b == bool 1')
    'a{x!="y"} > bool 0.5 and b == bool 1'
    """
    out: list[str] = []
    i = 0
    while i < len(expr):
        char = expr[i]
        if char in _CLOSING:
            end = _skip_enclosed(expr, i)
            out.append(expr[i:end])
            i = end
            continue
        operator = next((op for op in COMPARISONS if expr.startswith(op, i)), None)
        if operator is None:
            out.append(char)
            i += 1
            continue
        i += len(operator)
        out.append(operator)
        rest = expr[i:].lstrip()
        if not re.match(r"bool\b", rest):
            out.append(" bool")
    return "".join(out)
