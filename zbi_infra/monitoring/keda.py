"""KEDA: the autoscaler that scales history instances' full nodes on their RPC request rate, read from Prometheus.

KEDA rather than the Prometheus adapter: Kubernetes SIG Instrumentation is deprecating prometheus-adapter and points
its users to KEDA (kubernetes-sigs/prometheus-adapter#701, "Deprecate Prometheus Adapter"; the deprecation PR #703).
KEDA also keeps each instance's query next to the object it scales (a ScaledObject in the instance's namespace,
rather than one cluster-wide adapter rule file), and its `fallback` holds the replica count when Prometheus cannot
answer instead of letting an empty answer look like no load. Both would claim the cluster's one
external.metrics.k8s.io API; zBI installs nothing else there.

The chart is kedacore/charts' `keda` at a pinned version (tests/fixtures/upstream/keda/chart.json), released by
ZbiMonitoring into the monitoring namespace next to the Prometheus it queries; the ScaledObjects are created there
too, after the chart (its CRDs), the way the PodMonitors wait for the Prometheus Operator's.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra.config.instance import InstanceConfig
from zbi_infra.node.context import namespace_of
from zbi_infra.node.history_scaling import scaling_of
from zbi_infra.scale_up_model import KEDA_POLLING_SECONDS, RATE_WINDOW_SECONDS

# kedacore/charts at tag v2.20.2 (KEDA 2.20.2).
CHART = ("keda", "2.20.2")
CHART_REPOSITORY = "https://kedacore.github.io/charts"
RELEASE = "keda"
# ZbiMonitoring's namespace (monitoring/component.py), where the Prometheus KEDA queries runs.
NAMESPACE = "monitoring"
# kube-prometheus-stack's Prometheus Service: "<fullname>-prometheus", port prometheus.service.port (9090); the
# release name "kube-prometheus-stack" contains the chart's name, so it is the fullname.
PROMETHEUS_URL = f"http://kube-prometheus-stack-prometheus.{NAMESPACE}.svc:9090"
# zebrad 6.3.0's JSON-RPC middleware counts every call: metrics::counter!("rpc.requests.total", "method", "status")
# in zebra-rpc/src/server/rpc_metrics.rs, exported by the Prometheus exporter as rpc_requests_total
# (tests/fixtures/upstream/zebra/rpc-metrics.json).
RPC_REQUESTS = "rpc_requests_total"
# After three failed reads of Prometheus, KEDA holds the replicas where they are (never fewer than the floor).
FALLBACK_FAILURES = 3


def hpa_name(scaled_object: str) -> str:
    """The HPA KEDA creates for a ScaledObject (controllers/keda/hpa.go, getHPAName at v2.20.2)."""
    return f"keda-hpa-{scaled_object}"


def replica_pods(node_name: str) -> str:
    """The full node's pods, by the StatefulSet's naming: <name>-<ordinal>."""
    return f"{node_name}-[0-9]+"


def load_query(instance: str, node_name: str) -> str:
    """The instance's JSON-RPC requests per second over all its full nodes: one number, as KEDA requires (a query
    returning several elements is an error). With no request yet (zebrad's counter appears at the first call) it is
    0 while the nodes are scraped, and empty — an error, so the fallback holds — when they are not."""
    selector = f'namespace="{namespace_of(instance)}", pod=~"{replica_pods(node_name)}"'
    return f"sum(rate({RPC_REQUESTS}{{{selector}}}[{RATE_WINDOW_SECONDS}s])) or (0 * sum(up{{{selector}}}))"


def scaled_object(instance: str, config: InstanceConfig) -> dict[str, Any] | None:
    """The ScaledObject of one history instance (None without scaling): pure, so tests read it without Pulumi."""
    scaling = scaling_of(config)
    if scaling is None:
        return None
    node_name = config.node.kind.value
    floor = scaling.floor(config.node.replicas)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {
            "name": node_name,
            "namespace": namespace_of(instance),
            "labels": {"app.kubernetes.io/part-of": "zbi"},
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": node_name},
            "minReplicaCount": floor,
            "maxReplicaCount": scaling.max_replicas,
            "pollingInterval": KEDA_POLLING_SECONDS,
            "fallback": {
                "failureThreshold": FALLBACK_FAILURES,
                "replicas": floor,
                "behavior": "currentReplicasIfHigher",
            },
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        # One replica at a time, after load has stayed low for the window: a replica removed too
                        # soon costs a restore to bring back.
                        "scaleDown": {
                            "stabilizationWindowSeconds": scaling.scale_down_window_minutes * 60,
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
                        },
                    }
                }
            },
            "triggers": [
                {
                    "type": "prometheus",
                    # AverageValue: the HPA wants ceil(total rate / threshold) replicas, the per-replica target.
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": PROMETHEUS_URL,
                        "query": load_query(instance, node_name),
                        "threshold": str(scaling.target_requests_per_second),
                        # An empty answer is an error (the fallback holds), never "no load".
                        "ignoreNullValues": "false",
                    },
                }
            ],
        },
    }


def keda_values(*, priority_class_name: str | None, placement: dict[str, Any]) -> dict[str, Any]:
    """The chart's values: pure. The chart's own security contexts are already non-root, read-only and without
    capabilities; zBI narrows its RBAC to Deployments and StatefulSets, the kinds KEDA scales without the wildcard
    `*/scale` rule the chart otherwise grants."""
    return {
        "rbac": {"enabledCustomScaledRefKinds": False},
        **({"priorityClassName": priority_class_name} if priority_class_name else {}),
        **placement,
    }


def any_scaling(instances: dict[str, InstanceConfig]) -> bool:
    return any(scaling_of(config) is not None for config in instances.values())


def build_keda(
    name: str,
    instances: dict[str, InstanceConfig],
    priority_class_name: str | None,
    placement: dict[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release | None:
    """The chart, in the monitoring namespace, and each history instance's ScaledObject (after the chart's CRDs);
    nothing without scaling."""
    if not any_scaling(instances):
        return None
    release = k8s.helm.v3.Release(
        f"{name}-keda",
        name=RELEASE,
        chart=CHART[0],
        version=CHART[1],
        namespace=NAMESPACE,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
        values=keda_values(priority_class_name=priority_class_name, placement=placement),
        opts=opts,
    )
    after_chart = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[release]))
    for instance, config in sorted(instances.items()):
        obj = scaled_object(instance, config)
        if obj is None:
            continue
        k8s.apiextensions.CustomResource(
            f"{name}-{instance}-scaled-object",
            api_version=obj["apiVersion"],
            kind=obj["kind"],
            metadata=k8s.meta.v1.ObjectMetaArgs(**obj["metadata"]),
            spec=obj["spec"],
            opts=after_chart,
        )
    return release
