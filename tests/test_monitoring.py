"""The monitoring stack as rendered: pinned charts, monitors that find their pods and ports, the tested alert rules,
probes of every public endpoint, routing to secret webhooks, and a namespace the instances' policies admit."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from tests.conftest import UPSTREAM, PlanStack
from tests.k8s_objects import objects, one
from tests.test_relationships import pods, selects
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.config.monitoring import MonitoringConfig
from zbi_infra.monitoring.alerts import alert_rules
from zbi_infra.monitoring.component import (
    JSON_RPC_MODULE,
    PROBE_JOB,
    PROBE_MODULE,
    blackbox_values,
    kube_prometheus_stack_values,
)
from zbi_infra.plan.engine import Plan

CHARTS = json.loads((UPSTREAM / "prometheus-community" / "charts.json").read_text())
WEBHOOK = "https://hooks.example.com/zbi/critical"


@pytest.fixture(scope="module")
def dev(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev")


def release(plan: Plan, chart: str) -> dict:
    (found,) = [r.inputs for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == chart]
    return found


def test_the_charts_are_the_pinned_releases(dev: Plan) -> None:
    for chart in ("kube-prometheus-stack", "prometheus-blackbox-exporter"):
        inputs = release(dev, chart)
        assert inputs["version"] == CHARTS[chart]["version"] and inputs["namespace"] == "monitoring"
        assert inputs["repositoryOpts"]["repo"] == "https://prometheus-community.github.io/helm-charts"
    # The blackbox exporter the chart ships is the release whose metric names the rules were checked against.
    assert CHARTS["prometheus-blackbox-exporter"]["appVersion"] == "v0.28.0"
    assert json.loads((UPSTREAM / "SOURCES.json").read_text())["blackbox_exporter/metrics.json"]["tag"] == "v0.28.0"


def test_the_instances_policies_admit_the_monitoring_namespace_and_only_it(dev: Plan) -> None:
    namespace = one(dev, "Namespace", "monitoring")["metadata"]["labels"]
    policy = one(dev, "NetworkPolicy", "full-node", "zbi-testnet")["spec"]
    metrics_rules = [r for r in policy["ingress"] if r["ports"] == [{"protocol": "TCP", "port": 9999}]]
    (rule,) = metrics_rules
    assert all(selects(peer["namespaceSelector"], namespace) for peer in rule["from"])
    assert not any(
        selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": "other"}) for peer in rule["from"]
    )


def test_every_monitor_finds_its_pods_and_their_metrics_port(dev: Plan) -> None:
    monitors = objects(dev, "PodMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {"zbi-full-node", "zbi-light-wallet", "zbi-gateway"}
    for monitor in monitors:
        namespace = monitor["metadata"]["namespace"]
        targets = [p for p in pods(dev, namespace) if selects(monitor["spec"]["selector"], p.labels)]
        assert len(targets) == 1, monitor["metadata"]["name"]
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["port"] in targets[0].ports
        template = next(
            w
            for w in objects(dev, "StatefulSet", namespace) + objects(dev, "Deployment", namespace)
            if w["metadata"]["name"] == targets[0].workload
        )["spec"]["template"]["metadata"]
        assert template["annotations"].get("prometheus.io/scrape") == "true"


def test_the_deployed_rules_are_the_tested_rules_and_the_probe_feeds_the_slo(dev: Plan, plan_stack: PlanStack) -> None:
    rule = one(dev, "PrometheusRule", "zbi-alerts", "monitoring")
    instance = InstanceConfig.model_validate(read_testnet())
    assert rule["spec"]["groups"] == alert_rules(
        {"testnet": instance}, probed_endpoints=True, snapshot_interval_hours=12, gateways=["testnet"]
    )
    probe = one(dev, "Probe", PROBE_JOB, "monitoring")["spec"]
    assert probe["jobName"] == PROBE_JOB and probe["module"] == PROBE_MODULE
    assert PROBE_MODULE in blackbox_values()["config"]["modules"]
    (target,) = probe["targets"]["staticConfig"]["static"]
    assert target == "testnet.lwd.zbi.example:443"
    slo = next(g for g in rule["spec"]["groups"] if g["name"] == "zbi-endpoint-slo")
    assert all(f'job="{PROBE_JOB}"' in r["expr"] for r in slo["rules"])


def read_testnet() -> dict:
    from tests.conftest import ROOT
    from zbi_infra.config.stack_file import read_stack_file

    return read_stack_file("dev", ROOT / "Pulumi.dev.yaml").config["zbi:instances"]["testnet"]


def test_prometheus_keeps_its_data_and_ranks_below_the_chain(dev: Plan, plan_stack: PlanStack) -> None:
    values = release(dev, "kube-prometheus-stack")["values"]
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "15d" and spec["priorityClassName"] == "zbi-monitoring"
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["resources"]["requests"]["storage"] == "50Gi" and "storageClassName" not in claim  # EKS default
    local = release(plan_stack("local"), "kube-prometheus-stack")["values"]["prometheus"]["prometheusSpec"]
    assert local["retention"] == "3d"
    assert local["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"] == "5Gi"
    chosen = plan_stack("local", merge={"zbi:monitoring": {"retentionDays": 7}})
    assert release(chosen, "kube-prometheus-stack")["values"]["prometheus"]["prometheusSpec"]["retention"] == "7d"


def test_alerts_route_by_severity_to_webhooks_kept_secret() -> None:
    values = kube_prometheus_stack_values(
        MonitoringConfig(
            remote_write_url="https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write"
        ),
        storage_class_name=None,
        priority_class_name=None,
        webhooks={"critical": WEBHOOK},
        region="us-east-1",
    )
    config = values["alertmanager"]["config"]
    assert config["route"]["receiver"] == "null"
    assert config["route"]["routes"] == [
        {"receiver": "critical", "matchers": ['severity="critical"'], "continue": False}
    ]
    assert {"name": "critical", "webhook_configs": [{"url": WEBHOOK, "send_resolved": True}]} in config["receivers"]
    (remote,) = values["prometheus"]["prometheusSpec"]["remoteWrite"]
    assert remote["sigv4"] == {"region": "us-east-1"}


def test_a_webhook_stays_out_of_the_plan_and_out_of_git(plan_stack: PlanStack, tmp_path) -> None:
    from tests.stack_input import project_copy, zbi

    project = project_copy(tmp_path)
    stack = (project / "Pulumi.dev.yaml").read_text()
    secret = stack + "  zbi:alertWebhookCritical:\n    secure: v1:c2VjcmV0:ZmFrZQ==\n"
    (project / "Pulumi.hooked.yaml").write_text(secret)
    result = zbi("plan", "hooked", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    (values,) = [
        r["inputs"]["values"]
        for r in json.loads(result.stdout)["resources"]
        if r["name"] == "hooked-monitoring-kube-prometheus-stack"
    ]
    # Every value under the secret is masked (keys stay): the webhook, and what sits beside it.
    assert values["alertmanager"]["config"]["receivers"] == "[secret]"
    assert "hooks.example.com" not in result.stdout
    plain = stack + f"  zbi:alertWebhookCritical: {WEBHOOK}\n"
    (project / "Pulumi.leaky.yaml").write_text(plain)
    refused = zbi("plan", "leaky", cwd=project)
    assert refused.returncode == 2 and "pulumi config set --secret zbi:alertWebhookCritical" in refused.stderr


def dashboard_queries(plan: Plan) -> dict[str, list[str]]:
    found = {}
    for config_map in objects(plan, "ConfigMap", "monitoring"):
        assert config_map["metadata"]["labels"] == {"grafana_dashboard": "1"}
        for file_name, text in config_map["data"].items():
            board = json.loads(text)
            found[file_name] = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    return found


def test_one_dashboard_for_the_platform_and_one_per_instance(dev: Plan) -> None:
    queries = dashboard_queries(dev)
    assert set(queries) == {"zbi-platform.json", "zbi-testnet.json"}
    instance = queries["zbi-testnet.json"]
    for needed in (
        "zcash_chain_verified_block_height",
        "zcash_net_peers",
        "grpc_server_handled_total",
        "predict_linear",
        # The gateway's: requests by user, method and outcome, and latency.
        "zbi_gateway_requests_total",
        "zbi_gateway_request_duration_seconds_bucket",
    ):
        assert any(needed in q for q in instance), needed


def test_every_dashboard_query_parses_and_reads_metrics_that_exist(dev: Plan, tmp_path) -> None:
    from tests.alert_harness import evidence, promtool

    known = evidence()
    histogram_suffixes = ("_bucket", "_sum", "_count")
    functions = {
        "sum", "by", "max", "on", "group_right", "rate", "increase", "avg_over_time", "predict_linear",
        "histogram_quantile",
    }  # fmt: skip
    records = []
    for file_name, exprs in dashboard_queries(dev).items():
        for expr in exprs:
            for word in re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[)", expr):
                if word in functions:
                    continue
                base = next((word.removesuffix(s) for s in histogram_suffixes if word.endswith(s)), word)
                assert word in known or base in known, (file_name, word)
            records.append({"record": f"zbi:dashboard_{len(records)}", "expr": expr})
    rules = tmp_path / "dashboards.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": records}]}))
    result = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


AMP = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-0123abcd-4567-89ef-0123-456789abcdef/api/v1/remote_write"


def test_remote_write_signs_as_a_role_that_may_write_to_that_workspace_only(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev", merge={"zbi:monitoring": {"remoteWriteUrl": AMP}})
    role = plan.named("dev-prometheus-remote-write")
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert (
        "system:serviceaccount:monitoring:kube-prometheus-stack-prometheus"
        in trust["Condition"]["StringEquals"].values()
    )
    (statement,) = json.loads(plan.named("dev-prometheus-remote-write-policy").inputs["policy"])["Statement"]
    assert statement["Action"] == ["aps:RemoteWrite"]
    assert (
        statement["Resource"] == "arn:aws:aps:us-east-1:123456789012:workspace/ws-0123abcd-4567-89ef-0123-456789abcdef"
    )
    values = release(plan, "kube-prometheus-stack")["values"]["prometheus"]
    assert values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(f"role/{role.id}")
    assert values["prometheusSpec"]["remoteWrite"] == [{"url": AMP, "sigv4": {"region": "us-east-1"}}]
    assert "serviceAccount" not in release(plan_stack("dev"), "kube-prometheus-stack")["values"]["prometheus"]


def test_remote_write_needs_an_amp_workspace_and_an_aws_stack(plan_stack: PlanStack) -> None:
    from zbi_infra.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape("zbi:monitoring.remoteWriteUrl")):
        plan_stack("dev", merge={"zbi:monitoring": {"remoteWriteUrl": "https://prometheus.example.com/write"}})
    with pytest.raises(ConfigError, match="a local stack does not have"):
        plan_stack("local", merge={"zbi:monitoring": {"remoteWriteUrl": AMP}})


def test_snapshot_freshness_reads_the_stacks_dlm_policy_over_twice_its_interval(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev", merge={"zbi:backup": {"intervalHours": 8}})
    inputs = release(plan, "prometheus-cloudwatch-exporter")
    assert inputs["version"] == CHARTS["prometheus-cloudwatch-exporter"]["version"]
    assert inputs["namespace"] == "monitoring"
    values = inputs["values"]
    config = yaml.safe_load(values["config"])
    policy = plan.named("dev-backups-snapshots")
    assert config["region"] == "us-east-1" and config["range_seconds"] == 2 * 8 * 3600
    assert not config["set_timestamp"]
    for metric in config["metrics"]:
        assert metric["aws_dimension_select"] == {"DLMPolicyId": [policy.id]}
        assert metric["aws_namespace"] == "AWS/EBS" and metric["aws_dimensions"] == ["DLMPolicyId"]
    groups = one(plan, "PrometheusRule", "zbi-alerts", "monitoring")["spec"]["groups"]
    (backups,) = [g for g in groups if g["name"] == "zbi-backups"]
    stale = next(r for r in backups["rules"] if r["alert"] == "ChainSnapshotStale")
    assert "16 hours" in stale["annotations"]["summary"]
    # Scraped by the chart's ServiceMonitor, which Prometheus selects wherever it is.
    assert values["serviceMonitor"]["enabled"]
    spec = release(plan, "kube-prometheus-stack")["values"]["prometheus"]["prometheusSpec"]
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False


def test_the_cloudwatch_exporter_reads_metrics_only_as_its_own_service_account(dev: Plan) -> None:
    role = dev.named("dev-cloudwatch-exporter")
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert "system:serviceaccount:monitoring:cloudwatch-exporter" in trust["Condition"]["StringEquals"].values()
    (statement,) = json.loads(dev.named("dev-cloudwatch-exporter-policy").inputs["policy"])["Statement"]
    assert all(action.split(":")[1].startswith(("Get", "List")) for action in statement["Action"])
    values = release(dev, "prometheus-cloudwatch-exporter")["values"]
    account = values["serviceAccount"]
    assert account["name"] == "cloudwatch-exporter"
    assert account["annotations"]["eks.amazonaws.com/role-arn"].endswith(f"role/{role.id}")
    hardened = values["containerSecurityContext"]
    assert hardened["readOnlyRootFilesystem"] and not hardened["allowPrivilegeEscalation"]
    assert values["securityContext"]["runAsNonRoot"] and values["resources"]["limits"]["memory"]


def test_no_snapshot_exporter_without_backups(plan_stack: PlanStack) -> None:
    for plan in (plan_stack("local"), plan_stack("dev", merge={"zbi:backup": {"enabled": False}})):
        charts = {r.inputs["chart"] for r in plan.of_type("kubernetes:helm.sh/v3:Release")}
        assert "prometheus-cloudwatch-exporter" not in charts and "kube-prometheus-stack" in charts
        groups = one(plan, "PrometheusRule", "zbi-alerts", "monitoring")["spec"]["groups"]
        assert "zbi-backups" not in {g["name"] for g in groups}


def test_every_chart_value_zbi_sets_is_one_the_chart_reads(dev: Plan) -> None:
    charts = json.loads((UPSTREAM / "prometheus-community" / "charts.json").read_text())
    for resource in dev.of_type("kubernetes:helm.sh/v3:Release"):
        chart = resource.inputs["chart"]
        if chart in charts:
            unknown = set(resource.inputs["values"]) - set(charts[chart]["valueKeys"])
            assert not unknown, (chart, unknown)
    assert "extraSecretMounts" in release(dev, "prometheus-blackbox-exporter")["values"]


def test_the_json_rpc_probe_signs_in_as_the_probe_user_through_each_gateway(dev: Plan) -> None:
    probe = one(dev, "Probe", "zbi-json-rpc", "monitoring")["spec"]
    assert probe["jobName"] == PROBE_JOB and probe["module"] == JSON_RPC_MODULE
    assert probe["targets"]["staticConfig"]["static"] == ["https://testnet.lwd.zbi.example:443/"]
    values = release(dev, "prometheus-blackbox-exporter")["values"]
    (mount,) = values["extraSecretMounts"]
    assert mount["secretName"] == "zbi-probe-key" and one(dev, "Secret", "zbi-probe-key", "monitoring")
    module = values["config"]["modules"][JSON_RPC_MODULE]
    assert module["http"]["basic_auth"]["password_file"] == f"{mount['mountPath']}/key"
    # Every key of the module is one blackbox_exporter 0.28's config reads (its own yaml tags, or those of the
    # HTTP client config it inlines from prometheus/common).
    source = (UPSTREAM / "blackbox_exporter" / "config.go").read_text()
    tags = set(re.findall(r'yaml:"([a-z_]+)', source))
    assert 'yaml:"http_client_config,inline"' in source
    assert set(module) <= tags and set(module["http"]) - {"basic_auth", "tls_config"} <= tags
