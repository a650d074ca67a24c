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

from zbi_infra.config.instance import cpu_millis, memory_mib

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


@dataclass
class Footprint:
    """The most an instance's pods may ask for at once: millicores and MiB, requested and limited; pods; storage."""

    requests_cpu: int = 0
    requests_memory: int = 0
    limits_cpu: int = 0
    limits_memory: int = 0
    pods: int = 0
    claims: int = 0
    storage_gib: int = 0
    workloads: list[str] = field(default_factory=list)

    def add_pods(
        self,
        workload: str,
        count: int,
        containers: list[k8s.core.v1.ContainerArgs],
        init_containers: list[k8s.core.v1.ContainerArgs] | None = None,
    ) -> None:
        """`count` pods of one template (its largest replica count, surge included)."""
        self.workloads.append(workload)
        self.pods += count
        for kind in ("requests", "limits"):
            cpu, memory = _resources(containers, kind)
            init_cpu, init_memory = _resources(init_containers or [], kind)
            pod_cpu = max([sum(cpu), *init_cpu])
            pod_memory = max([sum(memory), *init_memory])
            if kind == "requests":
                self.requests_cpu += count * pod_cpu
                self.requests_memory += count * pod_memory
            else:
                self.limits_cpu += count * pod_cpu
                self.limits_memory += count * pod_memory

    def add_claims(self, count: int, size_gib: int) -> None:
        self.claims += count
        self.storage_gib += count * size_gib

    def hard(self, headroom_percent: int) -> dict[str, str]:
        """The quota's `hard` limits: this footprint, grown by the headroom and rounded up."""

        def grown(value: int) -> int:
            return math.ceil(value * (100 + headroom_percent) / 100)

        return {
            "requests.cpu": f"{grown(self.requests_cpu)}m",
            "requests.memory": f"{grown(self.requests_memory)}Mi",
            "limits.cpu": f"{grown(self.limits_cpu)}m",
            "limits.memory": f"{grown(self.limits_memory)}Mi",
            "pods": str(grown(self.pods)),
            "persistentvolumeclaims": str(grown(self.claims)),
            "requests.storage": f"{grown(self.storage_gib)}Gi",
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
