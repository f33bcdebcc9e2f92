"""Prometheus config, alert rules and Grafana dashboards: valid, tested, and about real metrics.

promtool comes from Debian's `prometheus` package (`make tools` installs it); without it these
tests fail rather than skip, so a CI machine cannot pass them by accident.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import promql
import pytest
import yaml
from prometheus_client import Metric

from app.core.metrics import Metrics

PROVISIONING = promql.ROOT / "deploy" / "grafana" / "provisioning"
# Series Prometheus itself adds to every scrape.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}
POOL_ROW = {
    "name": "arf",
    "role": "champion",
    "version": 3,
    "roc_auc": 0.9,
    "average_precision": 0.7,
    "log_loss": 0.2,
    "labels": 100,
    "learned": 100,
    "drift_detected": 1,
    "in_drift": 0,
    "confusion": {"0.5": {"tp": 3, "fp": 1, "fn": 2, "tn": 94}},
}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: install Debian's `prometheus` package "
            "(`make tools`, or `apt-get install prometheus`)"
        )
    return path


def _run(promtool: str, *args: str, cwd: Path = promql.PROMETHEUS_DIR) -> str:
    done = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def _families(metrics: Metrics) -> Iterator[Metric]:
    yield from metrics.registry.collect()


@pytest.fixture(scope="module")
def exposed() -> dict[str, str]:
    """Every series name the app can expose → the family it belongs to."""
    metrics = Metrics()
    metrics.watch_pool(lambda: [POOL_ROW])
    names: dict[str, str] = {}
    for family in _families(metrics):
        for suffix in SUFFIXES.get(family.type, ("",)):
            names[family.name + suffix] = family.name
        for sample in family.samples:
            names[sample.name] = family.name
    return names


def test_prometheus_config_is_valid(promtool: str) -> None:
    output = _run(promtool, "check", "config", "prometheus.yml")
    assert "1 rule files found" in output


def test_alert_rules_are_valid(promtool: str) -> None:
    _run(promtool, "check", "rules", "alerts.yml")


def test_alert_rule_unit_tests_pass(promtool: str) -> None:
    assert "SUCCESS" in _run(promtool, "test", "rules", "alerts_test.yml")


def test_every_alert_fires_in_a_unit_test_and_some_stay_quiet() -> None:
    tests = yaml.safe_load((promql.PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    assert fired == {rule["alert"] for rule in promql.alert_rules()}
    assert any(not case["exp_alerts"] for case in cases)


def test_every_alert_has_a_severity_and_a_summary() -> None:
    for rule in promql.alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    # promtool has no "parse this query" command; recording rules get their PromQL checked.
    rules = [
        {"record": f"dashboard:query_{n}", "expr": expr}
        for n, (_, expr) in enumerate(promql.dashboard_exprs())
    ]
    for rule in rules:
        rule["expr"] = promql.substitute(rule["expr"])
        assert "$" not in rule["expr"], f"unknown Grafana variable in {rule['expr']}"
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    assert f"{len(rules)} rules found" in _run(promtool, "check", "rules", str(path))


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (topic) (rate(a_total{x="b_c"}[5m]))', {"a_total"}),
        ("a > ignoring (model, role) group_left () (b + 0.02)", {"a", "b"}),
        ("time() - max(c) > 300 and on (topic) sum(d) > 0", {"c", "d"}),
        ('label_replace(x offset 1h, "metric", "not_a_metric", "", "")', {"x"}),
        ("histogram_quantile(0.99, sum without (le) (rate(h_bucket[1m:10s])))", {"h_bucket"}),
        ("(sum(e) or vector(0)) == bool 0", {"e"}),
    ],
)
def test_metric_names_are_read_out_of_promql(expr: str, names: set[str]) -> None:
    assert promql.metric_names(expr) == names


def test_every_query_uses_only_metrics_the_app_exposes(exposed: dict[str, str]) -> None:
    unknown = {}
    for where, expr in promql.all_exprs():
        names = promql.metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        missing = names - exposed.keys() - SCRAPE_SERIES
        if missing:
            unknown[where] = sorted(missing)
    assert unknown == {}


def test_every_metric_the_app_declares_is_on_a_dashboard(exposed: dict[str, str]) -> None:
    shown = {
        exposed[name]
        for _, expr in promql.dashboard_exprs()
        for name in promql.metric_names(promql.substitute(expr))
        if name in exposed
    }
    assert set(exposed.values()) - shown == set()


def test_dashboards_query_the_provisioned_datasource() -> None:
    source = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (datasource,) = source["datasources"]
    uids = set()
    for board in promql.dashboards().values():
        uids.update(_datasource_uids(board))
    assert uids == {datasource["uid"], "-- Grafana --"}


def _datasource_uids(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            yield node["datasource"]["uid"]
        for value in node.values():
            yield from _datasource_uids(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_uids(item)


def test_dashboards_have_unique_ids_and_show_promotions() -> None:
    boards = promql.dashboards()
    assert set(boards) == {"model-monitoring.json", "service.json"}
    assert len({board["uid"] for board in boards.values()}) == len(boards)
    for name, board in boards.items():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), name
        annotations = [a for a in board["annotations"]["list"] if "expr" in a]
        assert any("riverguard_promotions_total" in a["expr"] for a in annotations), name


def test_model_dashboard_compares_champion_and_challengers() -> None:
    queries = " ".join(expr for where, expr in promql.dashboard_exprs() if "model-" in where)
    for needed in (
        "riverguard_model_roc_auc",
        "riverguard_model_average_precision",
        "riverguard_model_log_loss",
        "riverguard_model_score_bucket",
        "riverguard_decisions_total",
        "riverguard_label_delay_seconds_bucket",
        "riverguard_model_drifts",
    ):
        assert needed in queries
