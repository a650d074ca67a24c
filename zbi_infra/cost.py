"""`zbi cost <stack>`: the monthly cost of what a stack's plan creates, by service and by instance.

Everything countable is read from the offline plan (node groups, NAT gateways, public addresses, load balancers,
volumes and their IOPS and throughput, KMS keys, log groups, health checks); prices come from a data file with its
region, date and sources (`zbi_infra/data/aws-prices.json`, overridable); what cannot be counted (traffic, log
volume, how much a chain snapshot changes) is an assumption, stated in the output and overridable too.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from zbi_infra.config.prices import parse_prices, read_prices
from zbi_infra.config.recovery import BackupConfig
from zbi_infra.config.stack import StackConfig, StackRole
from zbi_infra.cost_history import history_cost_lines
from zbi_infra.cost_history_export import history_export_costs
from zbi_infra.errors import ConfigError
from zbi_infra.plan.capacity import nodes_at_minimum
from zbi_infra.plan.engine import Plan
from zbi_infra.plan.render import manifest
from zbi_infra.storage import DEFAULT_CLASS_ANNOTATION

PLATFORM = "platform"
GIB = 2**30


@dataclass(frozen=True)
class Assumptions:
    """Usage zBI cannot read from a plan, per month unless said otherwise."""

    nat_processed_gib: float = 500.0
    internet_egress_gib: float = 500.0
    # Load Balancer Capacity Units a public NLB uses on average (new connections, active flows, bytes).
    nlb_lcus: float = 1.0
    log_ingested_gib_per_group: float = 10.0
    # How full a chain volume is, and how much of it changes per day (new blocks, compaction): snapshots are
    # incremental, so each later snapshot stores about that change.
    chain_used_fraction: float = 0.7
    snapshot_daily_change_fraction: float = 0.01
    kms_requests: float = 100_000.0
    route53_million_queries: float = 1.0
    # Per exporting history instance: its Parquet in S3, and what its analysts' queries read (cost_history_export.py).
    export_stored_gib: float = 100.0
    athena_tb_scanned: float = 1.0

    @classmethod
    def with_overrides(cls, pairs: list[str]) -> Assumptions:
        known = {f.name: f for f in cls.__dataclass_fields__.values()}
        values: dict[str, float] = {}
        for pair in pairs:
            name, _, text = pair.partition("=")
            key = name.strip().replace("-", "_")
            if key not in known:
                raise ConfigError(
                    [f"--assume {pair[:60]!r}: no assumption {name[:40]!r}. Fix: use one of {', '.join(sorted(known))}"]
                )
            try:
                value = float(text)
            except ValueError:
                raise ConfigError(
                    [f"--assume {pair[:60]!r}: {text[:20]!r} is not a number. Fix: write {key}=N"]
                ) from None
            if value < 0 or not math.isfinite(value):
                raise ConfigError([f"--assume {pair[:60]!r}: must be a finite number of at least 0. Fix: {key}=N"])
            if key.endswith("_fraction") and value > 1:
                raise ConfigError([f"--assume {pair[:60]!r}: a fraction is at most 1. Fix: write e.g. {key}=0.5"])
            values[key] = value
        return cls(**values)


@dataclass(frozen=True)
class Line:
    service: str
    item: str
    owner: str  # an instance, or PLATFORM
    monthly_usd: float
    # EC2 only: the same capacity on 1-year reserved instances.
    reserved_usd: float | None = None

    @property
    def committed_usd(self) -> float:
        return self.reserved_usd if self.reserved_usd is not None else self.monthly_usd


@dataclass
class Estimate:
    stack: str
    region: str
    prices_date: str
    lines: list[Line] = field(default_factory=list)
    assumptions: Assumptions = field(default_factory=Assumptions)
    warnings: list[str] = field(default_factory=list)
    budget_usd: float | None = None

    def total(self, *, reserved: bool) -> float:
        return round(sum(line.committed_usd if reserved else line.monthly_usd for line in self.lines), 2)

    def by(self, attribute: str, *, reserved: bool = True) -> dict[str, float]:
        sums: dict[str, float] = {}
        for line in self.lines:
            key = getattr(line, attribute)
            sums[key] = sums.get(key, 0.0) + (line.committed_usd if reserved else line.monthly_usd)
        return {k: round(v, 2) for k, v in sorted(sums.items(), key=lambda kv: -kv[1])}

    def margin(self) -> float | None:
        """Budget minus the reserved-instance total (the platform budgets for reserved capacity)."""
        return None if self.budget_usd is None else round(self.budget_usd - self.total(reserved=True), 2)

    def document(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "region": self.region,
            "pricesDate": self.prices_date,
            "monthlyUsd": {"onDemand": self.total(reserved=False), "reserved1y": self.total(reserved=True)},
            "byService": self.by("service"),
            "byOwner": self.by("owner"),
            "budgetMonthlyUsd": self.budget_usd,
            "marginUsd": self.margin(),
            "assumptions": asdict(self.assumptions),
            "lines": [asdict(line) for line in self.lines],
            "warnings": self.warnings,
        }


def load_prices(path: Path | None) -> dict[str, Any]:
    """The packaged prices or `--prices FILE`, validated by the same model (zbi_infra/config/prices.py)."""
    if path is None:
        packaged = json.loads(resources.files("zbi_infra.data").joinpath("aws-prices.json").read_text())
        return parse_prices(packaged, "zbi_infra/data/aws-prices.json")
    return read_prices(path)


def _price(prices: dict[str, Any], key: str) -> float:
    value = prices.get(key)
    if not isinstance(value, int | float):
        raise ConfigError([f"prices: {key} is missing or not a number. Fix: add it to the prices file"])
    return float(value)


def _quantity_gib(text: str) -> float:
    units = {"Gi": 1.0, "Ti": 1024.0, "Mi": 1 / 1024}
    return float(text[:-2]) * units[text[-2:]] if text[-2:] in units else float(text) / GIB


def _owner(namespace: str | None, instances: set[str]) -> str:
    name = (namespace or "").removeprefix("zbi-")
    return name if namespace and namespace.startswith("zbi-") and name in instances else PLATFORM


def estimate(
    plan: Plan,
    config: StackConfig,
    *,
    prices: dict[str, Any],
    assumptions: Assumptions,
) -> Estimate:
    hours = _price(prices, "hoursPerMonth")
    region = config.platform.region if config.platform else "local"
    result = Estimate(
        plan.stack,
        region,
        str(prices.get("date", "?")),
        assumptions=assumptions,
        budget_usd=config.budget.monthly_usd if config.budget else None,
    )
    if config.role is StackRole.LOCAL:
        result.warnings.append("a local stack creates nothing billed by AWS")
        return result
    if region != prices.get("region") and region not in prices.get("alsoFor", []):
        result.warnings.append(
            f"prices are {prices.get('region')}'s, the stack is in {region}: pass --prices with {region}'s"
        )
    add = result.lines.append
    # A DR stack's instances are its primary's: their namespaces are named the same.
    instances = {r.name.removesuffix("-namespace") for r in plan.of_type("kubernetes:core/v1:Namespace")}

    def count(type_: str) -> int:
        return len(plan.of_type(type_))

    # EKS control plane.
    for _ in plan.of_type("eks:index:Cluster"):
        add(Line("EKS", "control plane", PLATFORM, hours * _price(prices, "eksClusterHour")))
    # EC2: each managed node group at the nodes the workload needs at its minimum scale (never below minSize), where
    # the Cluster Autoscaler settles whatever desiredSize says (zbi_infra/plan/capacity.py); its first instance type.
    ec2 = prices.get("ec2", {})
    disk_gib = 0.0
    needed = nodes_at_minimum(plan, config)
    for group in plan.of_type("eks:index:ManagedNodeGroup"):
        types = group.inputs.get("instanceTypes") or []
        desired = int((group.inputs.get("scalingConfig") or {}).get("desiredSize", 0))
        prefix = f"{config.cluster.name}-" if config.cluster else ""
        desired = next((zones.pop(0) for g, zones in needed.items() if group.name.startswith(f"{prefix}{g}-")), desired)
        kind = types[0] if types else "?"
        if kind not in ec2:
            raise ConfigError(
                [
                    f"prices: no EC2 price for {kind} (node group {group.name}). "
                    "Fix: add it under `ec2` in a --prices file"
                ]
            )
        on_demand = desired * hours * float(ec2[kind]["onDemand"])
        reserved = desired * hours * float(ec2[kind]["reserved1y"])
        add(
            Line(
                "EC2", f"{group.name}: {desired} x {kind} (the workload at its minimum)", PLATFORM, on_demand, reserved
            )
        )
        # Node groups are named <cluster>-<group>-<zone id>; each node has its group's root volume.
        node_groups = config.cluster.node_groups if config.cluster else {}
        prefix = f"{config.cluster.name}-" if config.cluster else ""
        settings = next((g for n, g in node_groups.items() if group.name.startswith(f"{prefix}{n}-")), None)
        disk_gib += desired * (settings.disk_size_gib if settings else 0)
    if disk_gib:
        add(
            Line(
                "EBS",
                f"node root volumes, {disk_gib:.0f} GiB gp3",
                PLATFORM,
                disk_gib * _price(prices, "ebsGp3GibMonth"),
            )
        )
    # Networking.
    nats = count("aws:ec2/natGateway:NatGateway")
    if nats:
        add(Line("VPC", f"{nats} NAT gateways", PLATFORM, nats * hours * _price(prices, "natGatewayHour")))
        add(
            Line(
                "VPC",
                f"NAT data processed, {assumptions.nat_processed_gib:.0f} GiB (assumed)",
                PLATFORM,
                assumptions.nat_processed_gib * _price(prices, "natGatewayProcessedGib"),
            )
        )
        add(
            Line(
                "Data transfer",
                f"internet egress, {assumptions.internet_egress_gib:.0f} GiB (assumed)",
                PLATFORM,
                assumptions.internet_egress_gib * _price(prices, "internetEgressGib"),
            )
        )
    eips = count("aws:ec2/eip:Eip")
    if eips:
        add(
            Line(
                "VPC", f"{eips} public IPv4 addresses (NAT)", PLATFORM, eips * hours * _price(prices, "publicIpv4Hour")
            )
        )
    zones = len(plan.of_type("aws:ec2/subnet:Subnet")) // 2 or 1
    objects = [manifest(resource) for resource in plan.kubernetes_objects()]
    classes = [obj for obj in objects if obj.get("kind") == "StorageClass"]
    storage_classes = {obj["metadata"]["name"]: obj.get("parameters") or {} for obj in classes}
    default_class = next(
        (
            obj["metadata"]["name"]
            for obj in classes
            if (obj["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION)
        ),
        "",
    )

    def parameters_of(class_name: str | None) -> dict[str, str]:
        """The parameters of a claim's StorageClass; no name: the cluster's default class."""
        return storage_classes.get(class_name or default_class, {})

    for obj in objects:
        namespace = obj.get("metadata", {}).get("namespace")
        owner = _owner(namespace, instances)
        if obj.get("kind") == "Service" and obj.get("spec", {}).get("type") == "LoadBalancer":
            name = f"{namespace}/{obj['metadata']['name']}"
            nlb = hours * (_price(prices, "nlbHour") + assumptions.nlb_lcus * _price(prices, "nlbLcuHour"))
            add(Line("ELB", f"NLB {name} ({assumptions.nlb_lcus:g} LCU assumed)", owner, nlb))
            add(
                Line("VPC", f"NLB {name}: {zones} public IPv4", owner, zones * hours * _price(prices, "publicIpv4Hour"))
            )
        if obj.get("kind") == "StatefulSet":
            replicas = int(obj["spec"].get("replicas", 1))
            for claim in obj["spec"].get("volumeClaimTemplates", []):
                size = _quantity_gib(claim["spec"]["resources"]["requests"]["storage"])
                parameters = parameters_of(claim["spec"].get("storageClassName"))
                _volumes(add, prices, f"{namespace}/{obj['metadata']['name']} {claim['metadata']['name']}", owner,
                         replicas, size, parameters)  # fmt: skip
        if obj.get("kind") == "Deployment":
            # Generic ephemeral volumes (the gateway's history cache): one EBS volume per replica, at the minimum.
            replicas = _minimum_replicas(obj, objects)
            for volume in obj["spec"]["template"]["spec"].get("volumes", []):
                claim = (volume.get("ephemeral") or {}).get("volumeClaimTemplate")
                if claim:
                    size = _quantity_gib(claim["spec"]["resources"]["requests"]["storage"])
                    parameters = parameters_of(claim["spec"].get("storageClassName"))
                    _volumes(add, prices, f"{namespace}/{obj['metadata']['name']} {volume['name']}", owner,
                             replicas, size, parameters)  # fmt: skip
    # History instances: their rotating snapshot, and fast snapshot restore where it is on (cost_history.py).
    for service, what, owner, monthly in history_cost_lines(
        objects, prices=prices, hours=hours, used_fraction=assumptions.chain_used_fraction
    ):
        add(Line(service, what, owner, monthly))
    for release in plan.of_type("kubernetes:helm.sh/v3:Release"):
        if release.inputs.get("chart") == "kube-prometheus-stack":
            spec = release.inputs["values"]["prometheus"]["prometheusSpec"]
            claim = spec.get("storageSpec", {}).get("volumeClaimTemplate", {}).get("spec", {})
            size = _quantity_gib(claim.get("resources", {}).get("requests", {}).get("storage", "0Gi"))
            if size:
                parameters = parameters_of(claim.get("storageClassName"))
                _volumes(add, prices, "monitoring/prometheus", PLATFORM, 1, size, parameters)
    # Snapshots of the chain volumes, and their copies in the DR region.
    backup = config.backup or BackupConfig()
    if config.role is StackRole.PRIMARY and backup.enabled and plan.of_type("aws:dlm/lifecyclePolicy:LifecyclePolicy"):
        for name, instance in sorted(config.instances.items()):
            used = instance.node.storage.size_gib * assumptions.chain_used_fraction * instance.node.replicas
            change = used * assumptions.snapshot_daily_change_fraction
            retention_days = backup.retain_count * backup.interval_hours / 24
            stored = used + change * retention_days
            dr_stored = used + change * backup.dr_retain_days
            add(Line("EBS snapshots", f"{name}: {stored:.0f} GiB kept (assumed change)", name,
                     stored * _price(prices, "snapshotGibMonth")))  # fmt: skip
            add(Line("EBS snapshots", f"{name}: {dr_stored:.0f} GiB copies in {backup.dr_region}", name,
                     dr_stored * _price(prices, "snapshotGibMonth")))  # fmt: skip
            add(Line("Data transfer", f"{name}: snapshot copies to {backup.dr_region}, {change * 30:.0f} GiB", name,
                     change * 30 * _price(prices, "interRegionTransferGib")))  # fmt: skip
    # Keys, logs, DNS.
    keys = count("aws:kms/key:Key")
    if keys:
        requests = assumptions.kms_requests / 10_000 * _price(prices, "kmsTenThousandRequests")
        add(Line("KMS", f"{keys} keys, {assumptions.kms_requests:.0f} requests (assumed)", PLATFORM,
                 keys * _price(prices, "kmsKeyMonth") + requests))  # fmt: skip
    groups = count("aws:cloudwatch/logGroup:LogGroup")
    if groups:
        gib = groups * assumptions.log_ingested_gib_per_group
        add(Line("CloudWatch Logs", f"{groups} log groups, {gib:.0f} GiB ingested (assumed)", PLATFORM,
                 gib * (_price(prices, "logsIngestedGib") + _price(prices, "logsStoredGibMonth"))))  # fmt: skip
    checks = count("aws:route53/healthCheck:HealthCheck")
    records = count("aws:route53/record:Record")
    if checks or records:
        add(Line("Route 53", f"{checks} health checks, {assumptions.route53_million_queries:g}M queries (assumed)",
                 PLATFORM, checks * _price(prices, "route53HealthCheckMonth")
                 + assumptions.route53_million_queries * _price(prices, "route53MillionQueries")))  # fmt: skip
    result.lines += [Line(*row) for row in history_export_costs(plan, config, prices, assumptions)]
    return result


def _minimum_replicas(workload: dict[str, Any], objects: list[dict[str, Any]]) -> int:
    """The replicas a workload runs at its minimum: its HorizontalPodAutoscaler's floor, else its own count."""
    namespace, name = workload["metadata"].get("namespace"), workload["metadata"]["name"]
    for obj in objects:
        if obj.get("kind") == "HorizontalPodAutoscaler" and obj["metadata"].get("namespace") == namespace:
            target = obj["spec"]["scaleTargetRef"]
            if target.get("kind") == workload["kind"] and target.get("name") == name:
                return int(obj["spec"].get("minReplicas", 1))
    return int(workload["spec"].get("replicas", 1))


def _volumes(
    add: Any, prices: dict[str, Any], what: str, owner: str, count: int, size_gib: float, parameters: dict[str, str]
) -> None:
    """`count` gp3 volumes: GiB, and IOPS and throughput above gp3's free 3,000 and 125 MiB/s."""
    iops = max(0, int(parameters.get("iops", 3000)) - 3000)
    throughput = max(0, int(parameters.get("throughput", 125)) - 125)
    monthly = count * (
        size_gib * _price(prices, "ebsGp3GibMonth")
        + iops * _price(prices, "ebsGp3IopsMonthAbove3000")
        + throughput * _price(prices, "ebsGp3MibpsMonthAbove125")
    )
    extra = f", +{iops} IOPS, +{throughput} MiB/s" if iops or throughput else ""
    add(Line("EBS", f"{what}: {count} x {size_gib:.0f} GiB gp3{extra}", owner, monthly))


def report(estimate: Estimate, prices: dict[str, Any]) -> str:
    """The estimate for people: totals, by service, by owner, every line, the assumptions and where prices come from."""
    out = [
        f"Monthly cost of stack '{estimate.stack}' ({estimate.region}), prices of {estimate.prices_date}",
        f"  on demand:           ${estimate.total(reserved=False):>12,.2f}",
        f"  1-year reserved EC2: ${estimate.total(reserved=True):>12,.2f}"
        f"   (a year: ${estimate.total(reserved=True) * 12:,.0f})",
    ]
    if estimate.budget_usd is not None:
        margin = estimate.margin() or 0.0
        word = "under" if margin >= 0 else "OVER"
        out.append(f"  budget:              ${estimate.budget_usd:>12,.2f}   {word} by ${abs(margin):,.2f}")
    if not estimate.lines:  # a local stack: nothing priced, so no empty tables, assumptions or price sources
        return "\n".join([*out, *(f"warning: {w}" for w in estimate.warnings)])
    out += ["", "By service (reserved):"]
    out += [f"  {name:<16} ${value:>11,.2f}" for name, value in estimate.by("service").items()]
    out += ["", "By instance (reserved; shared capacity under 'platform'):"]
    out += [f"  {name:<16} ${value:>11,.2f}" for name, value in estimate.by("owner").items()]
    out += ["", "Lines (on demand; reserved where it differs):"]
    for line in estimate.lines:
        reserved = f"  (reserved ${line.reserved_usd:,.2f})" if line.reserved_usd is not None else ""
        out.append(f"  {line.service:<16} {line.item} [{line.owner}]: ${line.monthly_usd:,.2f}{reserved}")
    out += ["", "Assumptions (override with --assume NAME=N):"]
    out += [f"  {name} = {value:g}" for name, value in asdict(estimate.assumptions).items()]
    out += ["", f"Prices: {prices.get('note', '')}", *(f"  {url}" for url in prices.get("source", []))]
    out += [f"warning: {w}" for w in estimate.warnings]
    return "\n".join(out)
