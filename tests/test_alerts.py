"""zBI's alert rules: accepted by promtool, each proven by `promtool test rules` to fire on a series that should
fire it and to stay quiet on one that should not, and built only from metrics their exporters' sources name."""

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
from zbi_infra.monitoring.alerts import alert_rules, error_budget_minutes
from zbi_infra.monitoring.snapshot_freshness import DLM_NAMESPACE, WATCHED, exported_name
from zbi_infra.render.gateway_metrics import metric_names

INSTANCES = {
    "testnet": InstanceConfig.model_validate({"network": "testnet"}),
    "regnet": InstanceConfig.model_validate({"network": "regtest", "lightwallet": {"kind": "none"}}),
}
ENDPOINT = "testnet.lwd.zbi.example:443"
GROUPS = alert_rules(
    INSTANCES, probed_endpoints=True, snapshot_interval_hours=12, gateways=["testnet"], control_plane=True
)
RULES = {rule["alert"]: rule for group in GROUPS for rule in group["rules"]}
NS = 'namespace="zbi-testnet"'
POLICY = 'job="cloudwatch-exporter", exported_job="aws_ebs", dlm_policy_id="policy-0123456789abcdef0"'


def gateway_series(api: str, code: str, user: str = "exchange") -> str:
    """A series of the gateway's metrics program (zbi_infra.render.gateway_metrics) as Prometheus scrapes it."""
    return f'zbi_gateway_requests_total{{{NS}, pod="gateway-0", user="{user}", api="{api}", method="m", code="{code}"}}'


# alert -> (interval, evaluation time, series that fire it, labels it fires with, series that must not fire it)
CASES: dict[str, tuple[str, str, list[tuple[str, str]], dict[str, str], list[tuple[str, str]]]] = {
    "ZcashNodeNotReady": (
        "1m",
        "20m",
        [(f'kube_pod_status_ready{{{NS}, pod="zebrad-0", condition="false"}}', "1x30")],
        {"namespace": "zbi-testnet", "pod": "zebrad-0"},
        [(f'kube_pod_status_ready{{{NS}, pod="zebrad-0", condition="false"}}', "0x30")],
    ),
    "ZcashInstanceDown": (
        "1m",
        "10m",
        [(f'kube_statefulset_status_replicas_ready{{{NS}, statefulset="zebrad"}}', "0x20")],
        {"namespace": "zbi-testnet"},
        [(f'kube_statefulset_status_replicas_ready{{{NS}, statefulset="zebrad"}}', "1x20")],
    ),
    "ZcashTipNotAdvancing": (
        "1m",
        "40m",
        [(f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-0"}}', "100x60")],
        {"namespace": "zbi-testnet", "pod": "zebrad-0"},
        # An advancing chain, and a stalled one on an isolated regtest network (no tip to follow).
        [
            (f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-0"}}', "100+1x60"),
            ('zcash_chain_verified_block_height{namespace="zbi-regnet", pod="zebrad-0"}', "5x60"),
        ],
    ),
    "ZcashReplicaBehind": (
        "1m",
        "20m",
        [
            (f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-0"}}', "200+1x40"),
            (f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-1"}}', "100+1x40"),
        ],
        {"namespace": "zbi-testnet", "pod": "zebrad-1"},
        [
            (f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-0"}}', "200+1x40"),
            (f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-1"}}', "198+1x40"),
        ],
    ),
    # A replica with no height series (stuck before its first block since it started) fires; one reporting its
    # height, and one on an isolated regtest network, do not.
    "ZcashHeightUnknown": (
        "1m",
        "40m",
        [
            (f'kube_pod_status_phase{{{NS}, pod="zebrad-0", phase="Running"}}', "1x60"),
            (f'kube_pod_status_phase{{{NS}, pod="zebrad-1", phase="Running"}}', "1x60"),
            (f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-1"}}', "100+1x60"),
        ],
        {"namespace": "zbi-testnet", "pod": "zebrad-0"},
        [
            (f'kube_pod_status_phase{{{NS}, pod="zebrad-0", phase="Running"}}', "1x60"),
            (f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-0"}}', "_x5 100+1x55"),
            ('kube_pod_status_phase{namespace="zbi-regnet", pod="zebrad-0", phase="Running"}', "1x60"),
        ],
    ),
    "ZcashPeersLow": (
        "1m",
        "20m",
        [(f'zcash_net_peers{{{NS}, pod="zebrad-0"}}', "1x30")],
        {"namespace": "zbi-testnet", "pod": "zebrad-0"},
        [(f'zcash_net_peers{{{NS}, pod="zebrad-0"}}', "8x30")],
    ),
    "ZcashChainVolumeFilling": (
        "1m",
        "8h",
        [
            (f'kubelet_volume_stats_used_bytes{{{NS}, persistentvolumeclaim="data-zebrad-0"}}', "90+0.005x600"),
            (f'kubelet_volume_stats_capacity_bytes{{{NS}, persistentvolumeclaim="data-zebrad-0"}}', "100x600"),
            (f'kubelet_volume_stats_available_bytes{{{NS}, persistentvolumeclaim="data-zebrad-0"}}', "10-0.005x600"),
        ],
        {"namespace": "zbi-testnet", "persistentvolumeclaim": "data-zebrad-0"},
        # Over 80% but not growing: nothing to predict.
        [
            (f'kubelet_volume_stats_used_bytes{{{NS}, persistentvolumeclaim="data-zebrad-0"}}', "90x600"),
            (f'kubelet_volume_stats_capacity_bytes{{{NS}, persistentvolumeclaim="data-zebrad-0"}}', "100x600"),
            (f'kubelet_volume_stats_available_bytes{{{NS}, persistentvolumeclaim="data-zebrad-0"}}', "10x600"),
        ],
    ),
    "ZbiPodRestarting": (
        "1m",
        "10m",
        [(f'kube_pod_container_status_restarts_total{{{NS}, pod="zebrad-0", container="zebrad"}}', "0+1x60")],
        {"namespace": "zbi-testnet", "pod": "zebrad-0", "container": "zebrad"},
        [(f'kube_pod_container_status_restarts_total{{{NS}, pod="zebrad-0", container="zebrad"}}', "2x60")],
    ),
    "LightWalletUnavailable": (
        "1m",
        "10m",
        [(f'kube_statefulset_status_replicas_ready{{{NS}, statefulset="lightwalletd"}}', "0x20")],
        {"namespace": "zbi-testnet"},
        [(f'kube_statefulset_status_replicas_ready{{{NS}, statefulset="lightwalletd"}}', "2x20")],
    ),
    "LightWalletAtMaxReplicas": (
        "1m",
        "40m",
        [
            (
                f'kube_horizontalpodautoscaler_status_current_replicas{{{NS}, horizontalpodautoscaler="lightwalletd"}}',
                "6x60",
            ),
            (f'kube_horizontalpodautoscaler_spec_max_replicas{{{NS}, horizontalpodautoscaler="lightwalletd"}}', "6x60"),
        ],
        {"namespace": "zbi-testnet", "horizontalpodautoscaler": "lightwalletd"},
        # The light-wallet tier below its maximum, while the gateway's autoscaler sits at its own: no alert.
        [
            (
                f'kube_horizontalpodautoscaler_status_current_replicas{{{NS}, horizontalpodautoscaler="lightwalletd"}}',
                "2x60",
            ),
            (f'kube_horizontalpodautoscaler_spec_max_replicas{{{NS}, horizontalpodautoscaler="lightwalletd"}}', "6x60"),
            (
                f'kube_horizontalpodautoscaler_status_current_replicas{{{NS}, horizontalpodautoscaler="gateway"}}',
                "6x60",
            ),
            (f'kube_horizontalpodautoscaler_spec_max_replicas{{{NS}, horizontalpodautoscaler="gateway"}}', "6x60"),
        ],
    ),
    # At the rendered probe interval (30 s, zbi_infra/monitoring/component.py), one failed probe in an hour is 1/120
    # (0.83%) of the long window, under the 14.4x page (1.44%); it is evaluated while the failure is still inside the
    # 5-minute window (20% there), so only the long window keeps it quiet. The boundary (two failures) is in BOUNDARY.
    "EndpointErrorBudgetBurn1H": (
        "30s",
        "65m",
        [(f'probe_success{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "0x140")],
        {"job": "zbi-endpoints", "instance": ENDPOINT},
        [(f'probe_success{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "1x125 0 1x14")],
    ),
    "EndpointErrorBudgetBurn6H": (
        "5m",
        "6h10m",
        [(f'probe_success{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "1x24 0x60")],
        {"job": "zbi-endpoints", "instance": ENDPOINT},
        [(f'probe_success{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "1x80")],
    ),
    # The blackbox exporter down: its Probe targets scrape as up == 0 and probe_success vanishes.
    "EndpointProbesMissing": (
        "1m",
        "20m",
        [(f'up{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "1x5 0x25")],
        {"instance": ENDPOINT},
        [(f'up{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "1x5 0x3 1x22")],
    ),
    "GatewayDown": (
        "1m",
        "10m",
        [(f'kube_deployment_status_replicas_available{{{NS}, deployment="gateway"}}', "0x20")],
        {"namespace": "zbi-testnet"},
        [(f'kube_deployment_status_replicas_available{{{NS}, deployment="gateway"}}', "2x20")],
    ),
    # 0.2/s of 502s among 1/s of answers (17%) fires; one a minute (1.6%) does not.
    "GatewayErrors": (
        "1m",
        "20m",
        [(gateway_series("json-rpc", "200"), "0+60x30"), (gateway_series("json-rpc", "502"), "0+12x30")],
        {"namespace": "zbi-testnet"},
        [(gateway_series("json-rpc", "200"), "0+60x30"), (gateway_series("grpc", "14"), "0+1x30")],
    ),
    # 2/s of refused keys among 1/s of answers fires; the same share on a quiet instance (0.1/s) does not.
    "GatewayAuthRefusalsSpike": (
        "1m",
        "20m",
        [(gateway_series("json-rpc", "200"), "0+60x30"), (gateway_series("grpc", "16", user="-"), "0+120x30")],
        {"namespace": "zbi-testnet"},
        [(gateway_series("json-rpc", "200"), "0+6x30"), (gateway_series("json-rpc", "401", user="-"), "0+6x30")],
    ),
    # Failing for 20 minutes fires; a failure that a later reconcile clears within 10 does not.
    "StackReconcileFailing": (
        "1m",
        "30m",
        [('stacks_failing{namespace="zbi-control-plane", name="zbi-dev"}', "0x5 1x30")],
        {"name": "zbi-dev"},
        [('stacks_failing{namespace="zbi-control-plane", name="zbi-dev"}', "0x5 1x10 0x20")],
    ),
    # The exporter drops the completion series once no snapshot completed within twice the interval.
    "ChainSnapshotStale": (
        "5m",
        "2h",
        [(f"aws_ebs_snapshots_create_completed_sum{{{POLICY}}}", "1x6 _x30")],
        {"job": "cloudwatch-exporter"},
        [(f"aws_ebs_snapshots_create_completed_sum{{{POLICY}}}", "1x30")],
    ),
    "ChainSnapshotFailed": (
        "5m",
        "30m",
        [(f"aws_ebs_snapshots_create_failed_sum{{{POLICY}}}", "0x4 1x4")],
        {},
        [(f"aws_ebs_snapshots_create_failed_sum{{{POLICY}}}", "0x8")],
    ),
    "ChainSnapshotCopyFailed": (
        "5m",
        "30m",
        [(f"aws_ebs_snapshots_copied_region_failed_sum{{{POLICY}}}", "2x8")],
        {},
        [(f"aws_ebs_snapshots_copied_region_failed_sum{{{POLICY}}}", "0x8")],
    ),
    "CloudWatchExporterFailing": (
        "5m",
        "1h",
        [('cloudwatch_exporter_scrape_error{job="cloudwatch-exporter"}', "1x12")],
        {},
        [('cloudwatch_exporter_scrape_error{job="cloudwatch-exporter"}', "0x4 1x2 0x6")],
    ),
}


def every_five_minutes(value: str, count: int, failed_scrape: int = 3) -> str:
    """A series scraped every 5 minutes as promtool sees it at a 1-minute interval, with one failed scrape: Prometheus
    writes a staleness marker for each series of a target whose scrape failed (the CloudWatch exporter's scrape reads
    CloudWatch and can time out)."""
    samples = ["stale" if n == failed_scrape else value for n in range(count)]
    return " ".join(f"{sample} _ _ _ _" for sample in samples)


CLOUDWATCH_ERROR = 'cloudwatch_exporter_scrape_error{job="cloudwatch-exporter"}'
# alert -> (interval, evaluation time, series, labels it fires with or None if it must stay quiet): the edges.
BOUNDARY: list[tuple[str, str, str, list[tuple[str, str]], dict[str, str] | None]] = [
    # Two failed probes within five minutes: 2/120 (1.67%) of the hour, over the 14.4x page (1.44%).
    (
        "EndpointErrorBudgetBurn1H",
        "30s",
        "64m",
        [(f'probe_success{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "1x119 0 1 0 1x20")],
        {"job": "zbi-endpoints", "instance": ENDPOINT},
    ),
    # The same two failures once they have left the 5-minute window: the short window clears the page.
    (
        "EndpointErrorBudgetBurn1H",
        "30s",
        "70m",
        [(f'probe_success{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "1x119 0 1 0 1x20")],
        None,
    ),
    # No probe series at all (the Probe lost, or never scraped): absent() fires.
    ("EndpointProbesMissing", "1m", "20m", [('up{job="other"}', "1x30")], {"job": "zbi-endpoints"}),
    # gRPC INTERNAL (13) and UNAVAILABLE (14) alone are server errors (a rule that dropped them would stay quiet).
    (
        "GatewayErrors",
        "1m",
        "20m",
        [(gateway_series("grpc", "0"), "0+60x30"), (gateway_series("grpc", "14"), "0+12x30")],
        {"namespace": "zbi-testnet"},
    ),
    (
        "GatewayErrors",
        "1m",
        "20m",
        [(gateway_series("grpc", "0"), "0+60x30"), (gateway_series("grpc", "13"), "0+12x30")],
        {"namespace": "zbi-testnet"},
    ),
    # gRPC's client-side refusals (UNAUTHENTICATED 16) are not server errors.
    (
        "GatewayErrors",
        "1m",
        "20m",
        [(gateway_series("grpc", "0"), "0+60x30"), (gateway_series("grpc", "16"), "0+12x30")],
        None,
    ),
    # The CloudWatch exporter scraped every 5 minutes, one scrape failed: a bare `max(x) > 0` loses the series for
    # a whole interval, which resets `for: 30m`; read over three intervals it holds.
    ("CloudWatchExporterFailing", "1m", "45m", [(CLOUDWATCH_ERROR, every_five_minutes("1", 10))], {}),
    ("CloudWatchExporterFailing", "1m", "45m", [(CLOUDWATCH_ERROR, every_five_minutes("0", 10))], None),
    (
        "ChainSnapshotStale",
        "1m",
        "45m",
        [(f"aws_ebs_snapshots_create_completed_sum{{{POLICY}}}", every_five_minutes("1", 10))],
        None,
    ),
]


def promtool() -> str:
    return debian_tool("promtool", ["prometheus"])


def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "zbi-rules.yml"
    path.write_text(yaml.safe_dump({"groups": GROUPS}, sort_keys=False))
    return path


def expected(alert: str, labels: dict[str, str]) -> dict[str, Any]:
    rule = RULES[alert]
    summary = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], rule["annotations"]["summary"])
    return {"exp_labels": {**labels, **rule["labels"]}, "exp_annotations": {"summary": summary}}


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    result = subprocess.run([promtool(), "check", "rules", str(rules_file(tmp_path))], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in result.stdout


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


def run_cases(
    tmp_path: Path, groups: list[dict[str, Any]], cases: list[tuple[str, str, str, list[tuple[str, str]], Any]]
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "zbi-rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    tests = [
        {
            "interval": interval,
            "input_series": [{"series": s, "values": v} for s, v in series],
            "alert_rule_test": [
                {"eval_time": at, "alertname": alert, "exp_alerts": [] if labels is None else [expected(alert, labels)]}
            ],
        }
        for alert, interval, at, series, labels in cases
    ]
    unit = tmp_path / "unit.yml"
    unit.write_text(yaml.safe_dump({"rule_files": ["zbi-rules.yml"], "tests": tests}, sort_keys=False))
    return subprocess.run([promtool(), "test", "rules", str(unit)], capture_output=True, text=True, cwd=tmp_path)


def test_the_edges_of_the_alerts(tmp_path: Path) -> None:
    result = run_cases(tmp_path, GROUPS, BOUNDARY)
    assert result.returncode == 0, result.stdout + result.stderr


def mutated(alert: str, old: str, new: str) -> list[dict[str, Any]]:
    groups = json.loads(json.dumps(GROUPS))
    for group in groups:
        for rule in group["rules"]:
            if rule["alert"] == alert:
                assert old in rule["expr"], (alert, old)
                rule["expr"] = rule["expr"].replace(old, new)
    return groups


def test_the_edge_cases_kill_their_mutants(tmp_path: Path) -> None:
    """Each edge case fails against the rule it guards, written the way the issue found it."""
    mutants = {
        # GatewayErrors without gRPC INTERNAL/UNAVAILABLE.
        "GatewayErrors": mutated("GatewayErrors", '"5[0-9][0-9]|13|14"', '"5[0-9][0-9]"'),
        # The CloudWatch exporter's series read bare, at the mercy of the lookback.
        "CloudWatchExporterFailing": mutated(
            "CloudWatchExporterFailing",
            'max(max_over_time(cloudwatch_exporter_scrape_error{job="cloudwatch-exporter"}[15m]))',
            'max(cloudwatch_exporter_scrape_error{job="cloudwatch-exporter"})',
        ),
        # No absent(): a lost Probe is silent.
        "EndpointProbesMissing": mutated("EndpointProbesMissing", ' or on () absent(up{job="zbi-endpoints"})', ""),
    }
    for alert, groups in mutants.items():
        cases = [c for c in BOUNDARY if c[0] == alert and c[4] is not None]
        assert cases, alert
        for case in cases:
            assert run_cases(tmp_path, groups, [case]).returncode != 0, (alert, case)
    # The light-wallet maximum read across every HPA of the namespace pages for the gateway's autoscaler.
    everyone = mutated("LightWalletAtMaxReplicas", ', horizontalpodautoscaler=~"lightwalletd|zaino"', "")
    interval, at, _, _, quiet = CASES["LightWalletAtMaxReplicas"]
    case = ("LightWalletAtMaxReplicas", interval, at, quiet, None)
    assert run_cases(tmp_path, everyone, [case]).returncode != 0


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
