"""zBI's alert rules: accepted by promtool, each proven by `promtool test rules` to fire on a series that should
fire it and to stay quiet on one that should not, and built only from metrics their exporters' sources name. The
edge cases, and the mutant rules they catch, are in test_alert_edges.py."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.alert_harness import GROUPS, INSTANCES, RULES, cloudwatch_series, evidence, expected, promtool, rules_file
from tests.alert_series import CASES
from zbi_infra.monitoring.alerts import alert_rules, error_budget_minutes
from zbi_infra.monitoring.snapshot_freshness import DLM_NAMESPACE, WATCHED, exported_name


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    result = subprocess.run([promtool(), "check", "rules", str(rules_file(tmp_path))], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in result.stdout


@pytest.mark.slow
def test_every_alert_fires_when_it_should_and_not_otherwise(tmp_path: Path) -> None:
    assert set(CASES) == set(RULES), set(RULES) ^ set(CASES)
    tests = []
    for alert, (interval, at, firing, labels, quiet) in CASES.items():
        for series, expect in ((firing, [expected(alert, labels)]), (quiet, [])):
            tests.append(
                {
                    "interval": interval,
                    "input_series": [{"series": s, "values": v} for s, v in series],
                    "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": expect}],
                }
            )
    unit = tmp_path / "zbi-rules.test.yml"
    unit.write_text(yaml.safe_dump({"rule_files": [rules_file(tmp_path).name], "tests": tests}, sort_keys=False))
    result = subprocess.run([promtool(), "test", "rules", str(unit)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_broken_rule_would_fail_its_unit_test(tmp_path: Path) -> None:
    """The unit tests can fail: the same test run against a rule whose threshold is wrong does."""
    broken = json.loads(json.dumps(GROUPS))
    for group in broken:
        for rule in group["rules"]:
            if rule["alert"] == "ZcashPeersLow":
                rule["expr"] = rule["expr"].replace("< 3", "< 1")
    (tmp_path / "zbi-rules.yml").write_text(yaml.safe_dump({"groups": broken}, sort_keys=False))
    interval, at, firing, labels, _ = CASES["ZcashPeersLow"]
    test = {
        "interval": interval,
        "input_series": [{"series": s, "values": v} for s, v in firing],
        "alert_rule_test": [
            {"eval_time": at, "alertname": "ZcashPeersLow", "exp_alerts": [expected("ZcashPeersLow", labels)]}
        ],
    }
    unit = tmp_path / "unit.yml"
    unit.write_text(yaml.safe_dump({"rule_files": ["zbi-rules.yml"], "tests": [test]}, sort_keys=False))
    result = subprocess.run([promtool(), "test", "rules", str(unit)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0


def test_the_snapshot_series_are_the_exporters_names_for_dlms_metrics() -> None:
    derived = cloudwatch_series()
    assert {"aws_ebs_snapshots_create_completed_sum", "aws_ebs_snapshots_copied_region_failed_sum"} <= derived
    watched = {exported_name(DLM_NAMESPACE, metric) for metric in WATCHED}
    assert watched <= derived, watched - derived


def test_every_metric_a_rule_reads_is_named_by_its_exporters_source() -> None:
    known = evidence()
    functions = {
        "absent",
        "sum",
        "by",
        "max",
        "delta",
        "on",
        "group_right",
        "and",
        "predict_linear",
        "increase",
        "avg_over_time",
        "max_over_time",
        "absent_over_time",
        "rate",
        "unless",
    }
    for alert, rule in RULES.items():
        used = {word for word in re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[)", rule["expr"]) if word not in functions}
        assert used, alert
        assert used <= known, (alert, used - known)


def test_the_slo_and_its_error_budget() -> None:
    assert round(error_budget_minutes(), 1) == 43.2  # 0.1% of 30 days
    burn = RULES["EndpointErrorBudgetBurn1H"]["expr"]
    assert "[1h]" in burn and "[5m]" in burn and "14.4 * 0.001" in burn
    assert (
        "[6h]" in RULES["EndpointErrorBudgetBurn6H"]["expr"] and "[30m]" in RULES["EndpointErrorBudgetBurn6H"]["expr"]
    )
    assert not [g for g in alert_rules(INSTANCES, probed_endpoints=False) if g["name"] == "zbi-endpoint-slo"]
