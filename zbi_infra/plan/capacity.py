"""Will the planned pods fit the node groups? `zbi plan` asks before anything is written.

Demand, per zone: every pod of the plan at its largest — a workload at its HorizontalPodAutoscaler's maximum, plus a
Deployment's rollout surge — at its effective request (the larger of its containers' sum and its largest init
container, as the scheduler counts), spread evenly over the zones (zone spread is strict for full nodes and preferred
for the rest: an even share, rounded up, is what a zone must hold); plus the charts' pods (monitoring, control plane,
autoscaler) at the requests their values declare, placed in the zone that needs them most.

Supply, per zone: each untainted node group's nodes (sizes are per zone) at their *allocatable* resources, by the EKS
AL2023 node's own rule (zbi_infra/data/eks-node-allocatable.json, awslabs/amazon-eks-ami nodeadm): capacity minus
kube-reserved (CPU 6% of the first core, 1% of the second, 0.5% of the next two, 0.25% above; memory 11 MiB per
schedulable pod + 255 MiB) minus the 100 MiB hard-eviction threshold, minus a per-node allowance for the EKS add-ons'
DaemonSets; a group is counted at its smallest instance type. Nominal memory is used: the kernel keeps a few percent
of it, so real headroom is slightly smaller. The sums ignore bin packing: a fit here is necessary, not sufficient.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from zbi_infra.config.stack import StackConfig
from zbi_infra.plan.engine import Plan
from zbi_infra.plan.render import manifest

# The EKS add-ons' DaemonSets on every node (vpc-cni's aws-node, kube-proxy, the EBS CSI node plugin) and the node
# exporter: an allowance, not read from their manifests, which the plan does not hold.
DAEMONSET_MILLICPU, DAEMONSET_MIB = 200, 300
WORKLOAD_KINDS = ("StatefulSet", "Deployment")


@cache
def node_data() -> dict[str, Any]:
    return dict(json.loads(resources.files("zbi_infra.data").joinpath("eks-node-allocatable.json").read_text()))


@dataclass(frozen=True)
class Node:
    instance_type: str
    millicpu: int
    mib: int
    pods: int


def allocatable(instance_type: str) -> Node | None:
    """What the kubelet of an EKS AL2023 node of this type offers pods, after zBI's DaemonSet allowance."""
    data = node_data()
    spec = data["instanceTypes"].get(instance_type)
    if spec is None:
        return None
    total_m = spec["vcpu"] * 1000
    max_pods = spec["defaultMaxEnis"] * (spec["ipv4AddressesPerInterface"] - 1) + 2
    reserved_m = sum(
        (min(total_m, end if end is not None else total_m) - start) * basis_points // 10000
        for start, end, basis_points in data["cpuReservePercentsByCoreRange"]
        if total_m > start
    )
    reserved_mib = data["memoryReservedMibPerPod"] * max_pods + data["memoryReservedMibBase"]
    mib = spec["memoryGib"] * 1024 - reserved_mib - data["evictionHardMemoryMib"]
    return Node(instance_type, total_m - reserved_m - DAEMONSET_MILLICPU, mib - DAEMONSET_MIB, max_pods)


def smallest_node(instance_types: list[str]) -> Node | None:
    """A node group's node as counted here: its smallest instance type zBI knows (the autoscaler may pick any)."""
    known = [node for node in (allocatable(t) for t in instance_types) if node is not None]
    return min(known, key=lambda n: (n.millicpu, n.mib)) if known else None


def _millicpu(value: str) -> int:
    return int(value[:-1]) if value.endswith("m") else math.ceil(float(value) * 1000)


def _mib(value: str) -> int:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024**2, "K": 1000 / 1024**2, "M": 1000**2 / 1024**2}
    units["G"] = 1000**3 / 1024**2
    for suffix in sorted(units, key=len, reverse=True):
        if value.endswith(suffix):
            return math.ceil(float(value[: -len(suffix)]) * units[suffix])
    return math.ceil(int(value) / 1024**2)


def _requests(containers: list[dict[str, Any]]) -> list[tuple[int, int]]:
    found = []
    for container in containers:
        requests = (container.get("resources") or {}).get("requests") or {}
        found.append((_millicpu(str(requests.get("cpu", "0"))), _mib(str(requests.get("memory", "0")))))
    return found


@dataclass(frozen=True)
class Pods:
    """`count` pods of one workload, each requesting `millicpu` and `mib`; `spread`: shared out over the zones."""

    name: str
    count: int
    millicpu: int
    mib: int
    spread: bool = True


# The EKS add-ons' own Deployments, which the plan does not hold: CoreDNS (2 x 100m / 70Mi, the add-on's defaults)
# and the EBS CSI controller (2 replicas of six containers at about 10m / 40Mi each). An allowance.
SYSTEM_PODS = (
    Pods("kube-system/coredns", 2, 100, 70, spread=False),
    Pods("kube-system/ebs-csi-controller", 2, 60, 240, spread=False),
)


def planned_pods(plan: Plan, *, at_minimum: bool = False) -> list[Pods]:
    """Every pod at its largest (HPA maxima, rollout surge), or `at_minimum` (HPA minima, no rollout under way)."""
    objects = [manifest(r) for r in plan.kubernetes_objects()]
    maxima = {
        (o["metadata"].get("namespace"), o["spec"]["scaleTargetRef"]["name"]): o["spec"][
            "minReplicas" if at_minimum else "maxReplicas"
        ]
        for o in objects
        if o.get("kind") == "HorizontalPodAutoscaler"
    }
    pods = []
    for o in objects:
        if o.get("kind") not in WORKLOAD_KINDS:
            continue
        meta, spec = o["metadata"], o["spec"]
        count = maxima.get((meta.get("namespace"), meta["name"]), spec.get("replicas", 1))
        surge = 0 if at_minimum else ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxSurge", 0)
        count += surge if isinstance(surge, int) else math.ceil(count * int(str(surge).rstrip("%")) / 100)
        template = spec["template"]["spec"]
        main = _requests(template["containers"])
        init = _requests(template.get("initContainers") or [])
        millicpu = max([sum(c for c, _ in main), *(c for c, _ in init)])
        mib = max([sum(m for _, m in main), *(m for _, m in init)])
        pods.append(Pods(f"{meta.get('namespace')}/{meta['name']}", count, millicpu, mib))
    for release in plan.of_type("kubernetes:helm.sh/v3:Release"):
        for index, (millicpu, mib) in enumerate(_declared_requests(release.inputs.get("values") or {})):
            pods.append(Pods(f"{release.inputs.get('name')}#{index}", 1, millicpu, mib, spread=False))
    return pods


def _declared_requests(values: Any) -> Iterator[tuple[int, int]]:
    """Requests a chart's values declare (`resources.requests`), one pod each — or `replicaCount` pods, the Helm
    convention, when set beside them; charts' unset requests count 0, as the scheduler counts them."""
    if isinstance(values, dict):
        declared = values.get("resources")
        requests = declared.get("requests") if isinstance(declared, dict) else None
        if isinstance(requests, dict) and {"cpu", "memory"} & set(requests):
            replicas = values.get("replicaCount")
            for _ in range(replicas if isinstance(replicas, int) and replicas > 0 else 1):
                yield _millicpu(str(requests.get("cpu", "0"))), _mib(str(requests.get("memory", "0")))
        for key, value in values.items():
            if key != "resources":
                yield from _declared_requests(value)
    elif isinstance(values, list):
        for value in values:
            yield from _declared_requests(value)


@dataclass(frozen=True)
class Capacity:
    errors: list[str]
    warnings: list[str]


def check_capacity(plan: Plan, config: StackConfig) -> Capacity:
    """Errors: the pods cannot fit even at every node group's maxSize. Warnings: they do not fit the desiredSize."""
    if config.cluster is None or config.platform is None:
        return Capacity([], [])  # a local cluster: its nodes are not zBI's to count
    zones = len(config.platform.zone_ids or []) or config.platform.availability_zone_count
    groups = {
        name: group for name, group in sorted(config.cluster.node_groups.items()) if not group.taints
    }  # zBI's pods carry no tolerations
    nodes: dict[str, Node] = {}
    warnings = []
    for name, group in groups.items():
        node = smallest_node(group.instance_types)
        if node is None:
            warnings.append(f"capacity: node group {name}'s instance types are not in zBI's table: not checked")
            continue
        nodes[name] = node
    if not nodes:
        return Capacity([], warnings)
    pods = planned_pods(plan)
    errors = []
    biggest = max(nodes.values(), key=lambda n: (n.millicpu, n.mib))
    for p in pods:
        if p.millicpu > biggest.millicpu or p.mib > biggest.mib:
            errors.append(
                f"capacity: a {p.name} pod requests {p.millicpu}m CPU and {p.mib} MiB, more than any node offers "
                f"({biggest.instance_type}: {biggest.millicpu}m CPU and {biggest.mib} MiB allocatable). Fix: add a "
                "larger instance type to zbi:cluster.nodeGroups, or lower the workload's resources"
            )
    need_m = sum(math.ceil(p.count / zones) * p.millicpu for p in pods if p.spread)
    need_m += sum(p.count * p.millicpu for p in pods if not p.spread)
    need_mib = sum(math.ceil(p.count / zones) * p.mib for p in pods if p.spread)
    need_mib += sum(p.count * p.mib for p in pods if not p.spread)
    need_pods = sum(math.ceil(p.count / zones) for p in pods if p.spread) + sum(p.count for p in pods if not p.spread)

    def supply(size: str) -> tuple[int, int, int]:
        counted = [(getattr(groups[n], size), node) for n, node in nodes.items()]
        return (
            sum(c * node.millicpu for c, node in counted),
            sum(c * node.mib for c, node in counted),
            sum(c * node.pods for c, node in counted),
        )

    demand = f"{need_m}m CPU, {need_mib} MiB, {need_pods} pods"
    max_m, max_mib, max_pods = supply("max_size")
    first = next(iter(nodes))
    per_node = nodes[first]
    short = max(
        math.ceil((need_m - max_m) / per_node.millicpu),
        math.ceil((need_mib - max_mib) / per_node.mib),
        math.ceil((need_pods - max_pods) / per_node.pods),
    )
    if short > 0:
        errors.append(
            f"capacity: at their largest (autoscaler maxima, rollout surge, init containers, charts) the pods need "
            f"{demand} in the busiest zone; the node groups at maxSize allocate {max_m}m CPU, {max_mib} MiB, "
            f"{max_pods} pods per zone. Fix: raise zbi:cluster.nodeGroups.{first}.maxSize to at least "
            f"{groups[first].max_size + short} (sizes are per zone), use larger instance types, or lower the "
            "replicas or resources of the instances"
        )
        return Capacity(errors, warnings)
    desired_m, desired_mib, desired_pods = supply("desired_size")
    add = max(
        math.ceil((need_m - desired_m) / per_node.millicpu),
        math.ceil((need_mib - desired_mib) / per_node.mib),
        math.ceil((need_pods - desired_pods) / per_node.pods),
    )
    if add > 0:
        warnings.append(
            f"capacity: at their largest the pods need {demand} per zone, more than the node groups' desiredSize "
            f"holds ({desired_m}m CPU, {desired_mib} MiB, {desired_pods} pods): the Cluster Autoscaler will add up to "
            f"{add} {per_node.instance_type} node(s) per zone to node group {first} (within maxSize)"
        )
    return Capacity(errors, warnings)


def nodes_at_minimum(plan: Plan, config: StackConfig) -> dict[str, list[int]]:
    """Node group -> the nodes each zone needs with the workload at its minimum scale (HPA minima, no rollout), never
    below the group's minSize, busiest zone first: where the Cluster Autoscaler settles, so what `zbi cost` prices.
    A workload of n replicas fills min(n, zones) zones; the charts' and the EKS add-ons' pods share one zone. The
    demand goes to the first untainted group of a known instance type; the others stay at their minSize."""
    if config.cluster is None or config.platform is None:
        return {}
    zones = len(config.platform.zone_ids or []) or config.platform.availability_zone_count
    counts = {name: [group.min_size] * zones for name, group in config.cluster.node_groups.items()}
    usable = [
        (name, node)
        for name, group in sorted(config.cluster.node_groups.items())
        if not group.taints and (node := smallest_node(group.instance_types)) is not None
    ]
    if not usable:
        return counts
    name, node = usable[0]
    pods = [*planned_pods(plan, at_minimum=True), *SYSTEM_PODS]
    for zone in range(zones):
        here = [
            (
                (p.count // zones + (1 if zone < p.count % zones else 0))
                if p.spread
                else (p.count if zone == 0 else 0),
                p,
            )
            for p in pods
        ]
        need = max(
            math.ceil(sum(n * p.millicpu for n, p in here) / node.millicpu),
            math.ceil(sum(n * p.mib for n, p in here) / node.mib),
            math.ceil(sum(n for n, _ in here) / node.pods),
        )
        counts[name][zone] = max(counts[name][zone], need)
    return counts
