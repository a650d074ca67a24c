"""An instance's ResourceQuota and LimitRange: one tenant cannot starve the others.

The quota is derived from the instance's own pods as its builders declare them — each workload at its largest
(the HPA's maximum, a Deployment's rollout surge), each pod at its effective requests (the larger of its containers'
sum and its largest init container, as the scheduler and the quota admission count them) — plus the platform
administrator's headroom (`quota.headroomPercent`), so it never refuses a pod zBI itself would create.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pulumi_kubernetes as k8s

from zbi_infra.config.resources import cpu_millis, memory_mib

QUOTA_NAME = "instance-quota"
LIMITS_NAME = "instance-limits"
# For a container added by hand without resources: small, so that it is admitted and noticed.
DEFAULT_REQUEST = {"cpu": "50m", "memory": "64Mi"}
DEFAULT_LIMIT = {"cpu": "500m", "memory": "256Mi"}


def _resources(containers: list[k8s.core.v1.ContainerArgs], kind: str) -> tuple[list[int], list[int]]:
    cpu, memory = [], []
    for container in containers:
        resources: Any = container.resources
        values = dict(getattr(resources, kind) or {})
        cpu.append(cpu_millis(values["cpu"]))
        memory.append(memory_mib(values["memory"]))
    return cpu, memory


# The quota's resources, in the order its `hard` lists them, with the unit each total is counted in.
UNITS = {
    "requests.cpu": "m",
    "requests.memory": "Mi",
    "limits.cpu": "m",
    "limits.memory": "Mi",
    "pods": "",
    "persistentvolumeclaims": "",
    "requests.storage": "Gi",
    "services.loadbalancers": "",
    "services.nodeports": "",
}
# Exactly zBI's own, no headroom: a load balancer or node port of a tenant's making would publish whatever it
# selects (the node's unauthenticated RPC) to the internet. Zero when the instance has no public endpoint.
EXACT = {"services.loadbalancers", "services.nodeports"}


@dataclass
class Footprint:
    """The most an instance's pods may ask for at once, by the quota's resource names (units in UNITS)."""

    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(UNITS, 0))

    def add_pods(
        self,
        count: int,
        containers: list[k8s.core.v1.ContainerArgs],
        init_containers: list[k8s.core.v1.ContainerArgs] | None = None,
    ) -> None:
        """`count` pods of one template (its largest replica count, surge included)."""
        self.totals["pods"] += count
        for kind in ("requests", "limits"):
            cpu, memory = _resources(containers, kind)
            init_cpu, init_memory = _resources(init_containers or [], kind)
            self.totals[f"{kind}.cpu"] += count * max([sum(cpu), *init_cpu])
            self.totals[f"{kind}.memory"] += count * max([sum(memory), *init_memory])

    def add_claims(self, count: int, size_gib: int) -> None:
        self.totals["persistentvolumeclaims"] += count
        self.totals["requests.storage"] += count * size_gib

    def add_service(self, service_type: str, ports: int) -> None:
        """A Service as Kubernetes' quota counts it (pkg/quota/v1/evaluator/core/services.go): a LoadBalancer is one
        load balancer and, like a NodePort, one node port per port."""
        if service_type == "LoadBalancer":
            self.totals["services.loadbalancers"] += 1
        if service_type in ("LoadBalancer", "NodePort"):
            self.totals["services.nodeports"] += ports

    def hard(self, headroom_percent: int) -> dict[str, str]:
        """The quota's `hard` limits: this footprint, grown by the headroom and rounded up (Services exactly)."""
        return {
            resource: f"{math.ceil(total * (100 + (0 if resource in EXACT else headroom_percent)) / 100)}"
            f"{UNITS[resource]}"
            for resource, total in self.totals.items()
        }


def build_quota(ctx: Any, footprint: Footprint, headroom_percent: int) -> None:
    k8s.core.v1.ResourceQuota(
        f"{ctx.name}-quota",
        metadata=ctx.meta(QUOTA_NAME),
        spec=k8s.core.v1.ResourceQuotaSpecArgs(hard=footprint.hard(headroom_percent)),
        opts=ctx.in_namespace,
    )
    k8s.core.v1.LimitRange(
        f"{ctx.name}-limits",
        metadata=ctx.meta(LIMITS_NAME),
        spec=k8s.core.v1.LimitRangeSpecArgs(
            limits=[
                k8s.core.v1.LimitRangeItemArgs(type="Container", default_request=DEFAULT_REQUEST, default=DEFAULT_LIMIT)
            ]
        ),
        opts=ctx.in_namespace,
    )
