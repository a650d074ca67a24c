"""What keeps the monitoring stack from being the way around zBI's isolation.

- Grafana's administrator password is generated (a Pulumi secret, in a Secret the chart reads through
  `grafana.admin.existingSecret`), not the chart's well-known default.
- Alertmanager's API (silences: whoever reaches it can mute every alert) and Prometheus's (every tenant's per-user
  metrics) admit only the monitoring stack's own pods: Prometheus, Grafana, each other (and KEDA's operator).
- node-exporter, which needs the host's network and filesystems, runs in a namespace of its own that alone is
  `privileged`; the monitoring namespace runs `baseline`, so nothing else there may take the host.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from zbi_infra.kube import KubernetesObject

NODE_EXPORTER_NAMESPACE = "monitoring-node"
GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_ADMIN_VALUES = {
    "existingSecret": GRAFANA_ADMIN_SECRET,
    "userKey": "admin-user",
    "passwordKey": "admin-password",
}
# Pod labels the Prometheus Operator gives the pods it runs, and Grafana's chart gives Grafana's.
PROMETHEUS = {"app.kubernetes.io/name": "prometheus"}
ALERTMANAGER = {"app.kubernetes.io/name": "alertmanager"}
GRAFANA = {"app.kubernetes.io/name": "grafana"}
# KEDA's operator (kedacore/charts templates/manager/deployment.yaml), when history scaling installs it.
KEDA_OPERATOR = {"app.kubernetes.io/name": "keda-operator"}


def hardened_values() -> dict[str, Any]:
    """kube-prometheus-stack values (merged into the chart's): Grafana's generated admin, node-exporter elsewhere."""
    return {
        "grafana": {"admin": dict(GRAFANA_ADMIN_VALUES)},
        "prometheus-node-exporter": {"namespaceOverride": NODE_EXPORTER_NAMESPACE},
    }


def network_policy_specs() -> dict[str, dict[str, Any]]:
    """Ingress to Prometheus and Alertmanager from the monitoring stack's own pods only (any port of theirs)."""

    def peers(*selectors: dict[str, str]) -> list[dict[str, Any]]:
        return [{"podSelector": {"matchLabels": s}} for s in selectors]

    return {
        "prometheus": {
            "podSelector": {"matchLabels": PROMETHEUS},
            "policyTypes": ["Ingress"],
            # KEDA's operator reads the history instances' RPC rate (monitoring/keda.py).
            "ingress": [{"from": peers(PROMETHEUS, GRAFANA, KEDA_OPERATOR)}],
        },
        "alertmanager": {
            "podSelector": {"matchLabels": ALERTMANAGER},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers(PROMETHEUS, ALERTMANAGER, GRAFANA)}],
        },
    }


def monitoring_guards(name: str, namespace: str, opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
    """node-exporter's namespace, Grafana's admin Secret and the two NetworkPolicies (before the chart)."""
    made: list[pulumi.Resource] = [
        k8s.core.v1.Namespace(
            f"{name}-node-exporter-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=NODE_EXPORTER_NAMESPACE,
                labels={"app.kubernetes.io/part-of": "zbi", "pod-security.kubernetes.io/enforce": "privileged"},
            ),
            opts=opts,
        )
    ]
    # RandomPassword.result is a Pulumi secret: masked in state, plan output and logs.
    password = random.RandomPassword(f"{name}-grafana-admin-password", length=32, special=False, opts=opts)
    made.append(
        k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=GRAFANA_ADMIN_SECRET, namespace=namespace),
            string_data={"admin-user": "admin", "admin-password": password.result},
            opts=opts,
        )
    )
    for policy, spec in network_policy_specs().items():
        made.append(
            KubernetesObject(
                f"{name}-{policy}-ingress",
                api_version="networking.k8s.io/v1",
                kind="NetworkPolicy",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{policy}-ingress", namespace=namespace),
                fields={"spec": spec},
                opts=opts,
            )
        )
    return made
