"""Prometheus config, alert rules and the Grafana dashboard: valid, tested, and on our metrics.

The promtool checks need promtool (Debian: ``apt-get install --no-install-recommends
prometheus``, done by ``.ci/run``): without it they skip and say so, and fail under ``CI=true``.
The dashboard's structure is always checked.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitoring.metrics import METRIC_NAMES

INFRA = Path(__file__).resolve().parents[2] / "infra"
PROMETHEUS = INFRA / "prometheus"
GRAFANA = INFRA / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "clv.json"
DATASOURCE_UID = "clv-prometheus"
#: Grafana template variables, replaced by something PromQL parses before checking an expr.
TEMPLATE_VALUES = {"$model": ".*", "$metric": ".*", "$__rate_interval": "5m", "$__range": "1d"}

#: The ``promtool`` fixture (tests/conftest.py) skips, or fails under CI=true, without promtool.
needs_promtool = pytest.mark.usefixtures("promtool")


def _promtool(*args: str | Path, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def _exprs() -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in _dashboard()["panels"]
        for target in panel["targets"]
    ]


def _substitute(expr: str) -> str:
    for variable, value in TEMPLATE_VALUES.items():
        expr = expr.replace(variable, value)
    return expr


# --------------------------------------------------------------------------------------------
# promtool
# --------------------------------------------------------------------------------------------


@needs_promtool
def test_prometheus_config_is_valid() -> None:
    out = _promtool("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_alert_rules_are_valid() -> None:
    out = _promtool("check", "rules", "alerts.yml")
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_alert_rules_pass_their_unit_tests() -> None:
    out = _promtool("test", "rules", "alerts_test.yml")
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_every_dashboard_expr_parses(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"clv:dashboard_panel:{i}", "expr": _substitute(expr)}
                    for i, (_, expr) in enumerate(_exprs())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    out = _promtool("check", "rules", path, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


# --------------------------------------------------------------------------------------------
# Always: the files' structure
# --------------------------------------------------------------------------------------------


def test_alert_rules_cover_the_four_conditions() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text(encoding="utf-8"))
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {
        "CLVFeatureDriftHigh",
        "CLVDriftCheckStale",
        "CLVTrainingFlowFailed",
        "CLVChampionGiniDrop",
    } <= set(alerts)
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name
        for metric in re.findall(r"\bclv_[a-z_]+", rule["expr"]):
            assert metric in METRIC_NAMES, f"{name} uses unknown metric {metric}"


def test_dashboard_structure() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "clv-monitoring"
    assert dashboard["title"]
    panels = dashboard["panels"]
    assert len(panels) >= 5
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    for panel in panels:
        title = panel.get("title")
        assert title, f"panel {panel.get('id')} has no title"
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, title
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), title
        assert panel["targets"], f"panel {title!r} has no target"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), title
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"panel {title!r} has a target without expr"


def test_dashboard_uses_only_metrics_the_code_defines() -> None:
    for title, expr in _exprs():
        used = set(re.findall(r"\bclv_[a-zA-Z0-9_]+", expr))
        assert used, f"panel {title!r} queries no clv_ metric: {expr}"
        unknown = used - METRIC_NAMES
        assert not unknown, f"panel {title!r} uses {sorted(unknown)}, not in monitoring/metrics.py"


def test_dashboard_covers_the_requested_views() -> None:
    used = {m for _, expr in _exprs() for m in re.findall(r"\bclv_[a-z_]+", expr)}
    assert used >= {
        "clv_drift_share",
        "clv_drifted_columns",
        "clv_model_metric",
        "clv_predictions_total",
        "clv_flow_runs_total",
    }


def test_dashboard_template_variables_are_all_known() -> None:
    dashboard = _dashboard()
    defined = {f"${v['name']}" for v in dashboard["templating"]["list"]}
    for title, expr in _exprs():
        for variable in re.findall(r"\$\w+", expr):
            assert variable in defined | set(TEMPLATE_VALUES), f"{title!r}: {variable}"


def test_grafana_provisioning_points_at_the_dashboard_and_datasource() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    assert [d["uid"] for d in datasources["datasources"]] == [DATASOURCE_UID]
    assert datasources["datasources"][0]["type"] == "prometheus"
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "clv.yml").read_text(encoding="utf-8")
    )
    assert providers["apiVersion"] == 1
    assert providers["providers"][0]["type"] == "file"
    assert providers["providers"][0]["options"]["path"]


def test_prometheus_config_loads_the_alert_rules() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"clv-textfile", "clv-pushgateway"} <= jobs
    test_file = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text(encoding="utf-8"))
    assert test_file["rule_files"] == ["alerts.yml"]
