"""The alert rules under test and what tests them: zBI's rule groups for a testnet and a regtest instance, Debian's
promtool running unit tests of them, and the metric names the exporters' sources give (the evidence that the series a
rule reads exist)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import UPSTREAM
from tests.debian import debian_tool
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.monitoring.alerts import alert_rules
from zbi_infra.render.gateway_metrics import metric_names

INSTANCES = {
    "testnet": InstanceConfig.model_validate({"network": "testnet"}),
    "regnet": InstanceConfig.model_validate({"network": "regtest", "lightwallet": {"kind": "none"}}),
}
GROUPS = alert_rules(
    INSTANCES, probed_endpoints=True, snapshot_interval_hours=12, gateways=["testnet"], control_plane=True
)
RULES = {rule["alert"]: rule for group in GROUPS for rule in group["rules"]}


def promtool() -> str:
    return debian_tool("promtool", ["prometheus"])


def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "zbi-rules.yml"
    path.write_text(yaml.safe_dump({"groups": GROUPS}, sort_keys=False))
    return path


def expected(alert: str, labels: dict[str, str], rules: dict[str, dict[str, Any]] = RULES) -> dict[str, Any]:
    rule = rules[alert]
    summary = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], rule["annotations"]["summary"])
    return {"exp_labels": {**labels, **rule["labels"]}, "exp_annotations": {"summary": summary}}


def run_cases(
    tmp_path: Path,
    groups: list[dict[str, Any]],
    cases: list[tuple[str, str, str, list[tuple[str, str]], Any]],
    rules: dict[str, dict[str, Any]] = RULES,
) -> subprocess.CompletedProcess[str]:
    """promtool's unit test of `groups` with these (alert, interval, eval time, series, labels or None) cases; what
    a firing alert carries comes from `rules` (the unmutated rules, when `groups` is a mutant)."""
    (tmp_path / "zbi-rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    tests = [
        {
            "interval": interval,
            "input_series": [{"series": s, "values": v} for s, v in series],
            "alert_rule_test": [
                {
                    "eval_time": at,
                    "alertname": alert,
                    "exp_alerts": [] if labels is None else [expected(alert, labels, rules)],
                }
            ],
        }
        for alert, interval, at, series, labels in cases
    ]
    unit = tmp_path / "unit.yml"
    unit.write_text(yaml.safe_dump({"rule_files": ["zbi-rules.yml"], "tests": tests}, sort_keys=False))
    return subprocess.run([promtool(), "test", "rules", str(unit)], capture_output=True, text=True, cwd=tmp_path)


def cloudwatch_series() -> set[str]:
    """The series the CloudWatch exporter makes of DLM's snapshot-policy metrics, derived from the exporter's own
    naming rule and AWS's list of the metrics (the Sum statistic, the one the exporter is configured to read)."""
    naming = json.loads((UPSTREAM / "cloudwatch_exporter" / "naming.json").read_text())
    dlm = json.loads((UPSTREAM / "aws" / "dlm-cloudwatch-metrics.json").read_text())
    pattern, replacement = naming["snake_case"]["pattern"], naming["snake_case"]["replacement"].replace("$", "\\")

    def snake(text: str) -> str:
        return re.sub(pattern, replacement, text).lower()

    namespace = re.sub(r"[^a-zA-Z0-9:_]", "_", dlm["namespace"].lower())
    return {f"{namespace}_{snake(metric)}_sum" for metric in dlm["snapshot_policy_metrics"]}


def evidence() -> set[str]:
    names: set[str] = set()
    for path in UPSTREAM.glob("*/*metrics*.json"):
        names |= set(json.loads(path.read_text()).get("metrics", []))
    names |= set(json.loads((UPSTREAM / "cloudwatch_exporter" / "naming.json").read_text())["metrics"])
    # Prometheus's own series for every scrape target (the Probe targets' scrapes included).
    names.add("up")
    # The gateway's own metrics: what its rendered mtail program exports, proven by the live test
    # (tests/test_gateway_live.py) that scrapes Debian's mtail running it.
    return names | cloudwatch_series() | metric_names()
