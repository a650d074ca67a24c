"""Platform pods on a node group of their own: the in-cluster reconciler (cluster-admin) and the monitoring stack
(cluster-wide reads) stay off the nodes tenant pods run on, when the cluster has a `system` node group.

The group must carry a NoSchedule or NoExecute taint (ClusterConfig refuses one without): tenant pods, which never
tolerate it, cannot be scheduled next to the platform; platform pods select the group's label and tolerate exactly
its taints. Without a `system` group, nothing changes (and the README says what that costs).
"""

from __future__ import annotations

from typing import Any

from zbi_infra.config.platform import ClusterConfig

SYSTEM_NODE_GROUP = "system"
# ZbiCluster labels every node with its group's name.
NODE_GROUP_LABEL = "zbi.io/node-group"


def system_placement(cluster: ClusterConfig | None) -> dict[str, Any]:
    """`nodeSelector` and `tolerations` for platform pods; empty without a `system` node group."""
    group = cluster.node_groups.get(SYSTEM_NODE_GROUP) if cluster else None
    if group is None:
        return {}
    return {
        "nodeSelector": {NODE_GROUP_LABEL: SYSTEM_NODE_GROUP},
        "tolerations": [
            {"key": t.key, "operator": "Equal", "value": t.value, "effect": t.effect} for t in group.taints
        ],
    }


def place_kube_prometheus_stack(values: dict[str, Any], placement: dict[str, Any]) -> dict[str, Any]:
    """kube-prometheus-stack's values with every platform component placed (not node-exporter: it runs on every
    node by design)."""
    if not placement:
        return values
    placed = dict(values)
    for path in (("prometheus", "prometheusSpec"), ("alertmanager", "alertmanagerSpec"), ("grafana",),
                 ("kube-state-metrics",), ("prometheusOperator",)):  # fmt: skip
        parent = placed
        for key in path[:-1]:
            parent[key] = dict(parent.get(key) or {})
            parent = parent[key]
        parent[path[-1]] = {**(parent.get(path[-1]) or {}), **placement}
    return placed
