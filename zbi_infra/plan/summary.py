"""What `zbi plan` says first: the stack in the words a person checks it with (instances, nodes, volumes, public
endpoints, cost, the next step). The full resource tree follows only with `--tree`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zbi_infra.config import StackConfig, StackRole
from zbi_infra.config.public_tls import certificate_summary
from zbi_infra.errors import ConfigError
from zbi_infra.monitoring.history_scaling import plan_lines as history_plan_lines
from zbi_infra.plan.engine import Plan
from zbi_infra.plan.history_summary import cache_lines, export_lines

GIB = {"Ki": 1 / 1024**2, "Mi": 1 / 1024, "Gi": 1, "Ti": 1024}


@dataclass(frozen=True)
class Volume:
    workload: str
    claim: str
    gib: float
    replicas: int


@dataclass(frozen=True)
class PublicEndpoint:
    namespace: str
    service: str
    ports: tuple[int, ...]
    allowed: tuple[str, ...]


@dataclass
class Facts:
    """What the summary shows, read from the plan (what will exist) and the config (what was meant)."""

    volumes: list[Volume] = field(default_factory=list)
    endpoints: list[PublicEndpoint] = field(default_factory=list)
    node_groups: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (resource name, inputs)


def gib(quantity: str) -> float:
    for suffix, factor in GIB.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / 1024**3


def facts(plan: Plan) -> Facts:
    found = Facts()
    for resource in plan.resources:
        inputs = resource.inputs
        if resource.type == "kubernetes:apps/v1:StatefulSet":
            spec = inputs.get("spec") or {}
            for claim in spec.get("volumeClaimTemplates") or []:
                size = claim["spec"]["resources"]["requests"]["storage"]
                name = f"{inputs['metadata'].get('namespace')}/{inputs['metadata']['name']}"
                found.volumes.append(Volume(name, claim["metadata"]["name"], gib(size), int(spec.get("replicas", 1))))
        elif resource.type == "kubernetes:core/v1:Service" and (inputs.get("spec") or {}).get("type") == "LoadBalancer":
            spec = inputs["spec"]
            found.endpoints.append(
                PublicEndpoint(
                    namespace=inputs["metadata"].get("namespace") or "default",
                    service=inputs["metadata"]["name"],
                    ports=tuple(int(p["port"]) for p in spec.get("ports") or []),
                    allowed=tuple(spec.get("loadBalancerSourceRanges") or ["0.0.0.0/0"]),
                )
            )
        elif resource.type == "eks:index:ManagedNodeGroup":
            found.node_groups.append((resource.name, inputs))
    return found


def _tag(tier: Any) -> str:
    """The image tag a tier will run: its override, else the release zBI pins."""
    from zbi_infra.node.context import DEFAULT_IMAGES

    return str(tier.image.tag or DEFAULT_IMAGES[tier.kind].tag)


def _instance_lines(config: StackConfig, found: Facts, plan: Plan) -> list[str]:
    lines = []
    for name, instance in sorted(config.instances.items()):
        node = instance.node
        wallet = instance.lightwallet
        tiers = [f"{node.replicas} x {node.kind.value} {_tag(node)} ({node.storage.size_gib} GiB chain each)"]
        if wallet.kind.value != "none":
            replicas = f"{wallet.min_replicas}" + (
                f"-{wallet.max_replicas}" if wallet.max_replicas != wallet.min_replicas else ""
            )
            tiers.append(f"{replicas} x {wallet.kind.value} {_tag(wallet)} ({wallet.cache_size_gib} GiB cache each)")
        lines.append(f"  {name}: {instance.network.value}, {', '.join(tiers)}")
        lines += history_plan_lines(instance)
        lines += cache_lines(plan, name, instance)
        namespace = f"zbi-{name}"
        for endpoint in (e for e in found.endpoints if e.namespace == namespace):
            hosts = ", ".join(instance.endpoints.hostnames) or "the load balancer's DNS name"
            ports = ", ".join(str(p) for p in endpoint.ports)
            allowed = ", ".join(endpoint.allowed)
            lines.append(f"      public: {hosts} port {ports} (Service {endpoint.service}; from {allowed})")
            if not endpoint.service.endswith("-p2p"):
                lines.append(f"      certificate: {certificate_summary(instance.endpoints.public_tls)}")
        if not any(e.namespace == namespace for e in found.endpoints):
            lines.append(f"      private: reachable inside the cluster only (namespace {namespace})")
        lines += export_lines(plan, name, instance)
    return lines or ["  (none: add one with `zbi instance add` or `zbi init`)"]


def _node_group_lines(config: StackConfig, found: Facts) -> list[str]:
    """One line per configured group; its zones are the managed node groups named `<cluster>-<group>-<zone id>`."""
    lines: list[str] = []
    cluster = config.cluster
    if cluster is None:
        return lines
    for group in sorted(cluster.node_groups):
        members = [inputs for name, inputs in found.node_groups if name.startswith(f"{cluster.name}-{group}-")]
        if not members:
            continue
        first = members[0]
        scaling = first.get("scalingConfig") or {}
        types = "/".join(first.get("instanceTypes") or ["?"])
        lines.append(
            f"  {group}: {types} {first.get('capacityType', 'ON_DEMAND').lower().replace('_', '-')}, "
            f"{len(members)} zones x {scaling.get('desiredSize')} node (min {scaling.get('minSize')}, "
            f"max {scaling.get('maxSize')} per zone)"
        )
    return lines


def _volume_line(found: Facts) -> str:
    count = sum(v.replicas for v in found.volumes)
    total = sum(v.gib * v.replicas for v in found.volumes)
    parts = ", ".join(f"{v.replicas} x {v.gib:g} GiB {v.claim} ({v.workload})" for v in found.volumes)
    return f"  {count} volumes, {total:,.0f} GiB: {parts}" if found.volumes else "  none"


def summary(plan: Plan, config: StackConfig, *, monthly_usd: tuple[float, float] | None) -> str:
    """The plan in a screenful. `monthly_usd`: (on demand, with 1-year reservations), or None when not priced."""
    found = facts(plan)
    where = ""
    if config.role is not StackRole.LOCAL and config.platform is not None:
        where = f", {config.platform.region}"
    lines = [
        f"Plan for stack '{plan.stack}' of project '{plan.project}' ({config.role.value}{where}): "
        f"{len(plan.resources)} resources, offline (Pulumi mock runtime; nothing was created)",
        "",
        "Instances:",
        *_instance_lines(config, found, plan),
    ]
    if found.node_groups:
        lines += ["", "Node groups (one managed node group per zone):", *_node_group_lines(config, found)]
    elif config.role is StackRole.LOCAL:
        lines += ["", "Nodes: the existing cluster's (zbi:local.kubeconfigContext)"]
    lines += ["", "Volumes (one per replica):", _volume_line(found)]
    if monthly_usd is not None:
        on_demand, reserved = monthly_usd
        lines += [
            "",
            f"Monthly cost: about ${on_demand:,.0f} on demand, ${reserved:,.0f} with 1-year reservations",
            f"  (`zbi cost {plan.stack}`: the breakdown, its prices and assumptions)",
        ]
    lines += ["", "Next:", *_next_steps(plan.stack, config)]
    return "\n".join(lines)


def _next_steps(stack: str, config: StackConfig) -> list[str]:
    steps = [f"  zbi plan {stack} --tree      every resource, as `pulumi preview` lists them"]
    steps.append(f"  zbi endpoints {stack}        how clients connect (grpcurl and curl commands)")
    if config.role is StackRole.LOCAL:
        # A stack needs a backend and its own state before `pulumi up` (README: "On your own Kubernetes").
        steps.append(f"  pulumi login --local && pulumi stack init {stack}   once: state on this machine")
        steps.append(f"  pulumi up -s {stack}         create it on your cluster (needs the Pulumi CLI and the context)")
    else:
        steps.append(f"  pulumi preview -s {stack}    the same against AWS (needs credentials), then `pulumi up`")
    return steps


def monthly_cost(plan: Plan, config: StackConfig) -> tuple[float, float] | None:
    """(on demand, 1-year reserved) from `zbi cost`'s estimate with its default prices; None for a local stack
    (AWS bills nothing) or when the prices cannot price it."""
    if config.role is StackRole.LOCAL:
        return None
    from zbi_infra import cost

    try:
        estimate = cost.estimate(plan, config, prices=cost.load_prices(None), assumptions=cost.Assumptions())
    except ConfigError:
        return None
    return estimate.total(reserved=False), estimate.total(reserved=True)


def print_summary(plan: Plan, project: Any, *, tree: bool) -> None:
    """What `zbi plan <stack>` prints: the summary, then (with --tree) the tree and the counts by type."""
    from zbi_infra.config import load_stack_config
    from zbi_infra.plan import render

    stack_file = project.stack_file(plan.stack)
    config = load_stack_config(stack_file.config, secret_keys=set(stack_file.secret_keys))
    print(summary(plan, config, monthly_usd=monthly_cost(plan, config)))
    if tree:
        print()
        print(render.tree(plan))
        print()
        print(render.counts(plan))
