"""The monitoring stack is no way around the isolation: Grafana's admin password is generated and secret, Alertmanager
and Prometheus answer only the monitoring stack's own pods (as the cluster enforces NetworkPolicies), and only
node-exporter's namespace may take the host."""

from __future__ import annotations

import pytest

from tests.conftest import PlanStack
from tests.k8s_objects import objects, one
from tests.test_network_enforcement import Cluster
from zbi_infra.monitoring.hardening import ALERTMANAGER, GRAFANA, NODE_EXPORTER_NAMESPACE, PROMETHEUS
from zbi_infra.plan.engine import Plan


@pytest.fixture(scope="module")
def dev(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev")


def chart_values(plan: Plan) -> dict:
    (release,) = [
        r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "kube-prometheus-stack"
    ]
    return release.inputs["values"]


def test_grafanas_admin_password_is_generated_and_secret(dev: Plan) -> None:
    # kube-prometheus-stack 88.5.3 values.yaml (ea930ba, lines 1466-1475): adminUser/adminPassword, or
    # admin.existingSecret with userKey/passwordKey; the default is the chart's published password.
    admin = chart_values(dev)["grafana"]["admin"]
    secret = one(dev, "Secret", admin["existingSecret"], "monitoring")
    assert set(secret["stringData"]) == {admin["userKey"], admin["passwordKey"]}
    assert secret["stringData"][admin["passwordKey"]] == "[secret]"  # a Pulumi secret: masked in plan and state
    assert "adminPassword" not in chart_values(dev)["grafana"]
    assert any(
        r.name.endswith("grafana-admin-password") for r in dev.of_type("random:index/randomPassword:RandomPassword")
    )


def test_only_node_exporters_namespace_is_privileged(dev: Plan) -> None:
    enforce = {n["metadata"]["name"]: n["metadata"]["labels"].get("pod-security.kubernetes.io/enforce")
               for n in objects(dev, "Namespace")}  # fmt: skip
    assert enforce["monitoring"] == "baseline" and enforce[NODE_EXPORTER_NAMESPACE] == "privileged"
    assert [n for n, level in enforce.items() if level == "privileged"] == [NODE_EXPORTER_NAMESPACE]
    assert chart_values(dev)["prometheus-node-exporter"]["namespaceOverride"] == NODE_EXPORTER_NAMESPACE


@pytest.mark.parametrize(("target", "port"), [(ALERTMANAGER, 9093), (PROMETHEUS, 9090)])
def test_alertmanager_and_prometheus_answer_only_the_monitoring_stack(dev: Plan, target: dict, port: int) -> None:
    cluster = Cluster(dev)
    assert cluster.enforced
    pod = ("monitoring", dict(target), {"web": port})
    gateway = cluster.pod("zbi-testnet", "gateway")
    assert not cluster.reaches(gateway[:2], pod, "web")  # a tenant's pod
    assert not cluster.reaches(("monitoring", {"app.kubernetes.io/name": "prometheus-blackbox-exporter"}), pod, "web")
    assert not cluster.reaches(("default", dict(PROMETHEUS)), pod, "web")  # the labels, in another namespace
    assert cluster.reaches(("monitoring", dict(PROMETHEUS)), pod, "web")
    assert cluster.reaches(("monitoring", dict(GRAFANA)), pod, "web")
