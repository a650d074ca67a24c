"""Hardened building blocks shared by every zBI workload: security contexts, labels, resource blocks."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra.config.resources import ResourcesConfig
from zbi_infra.image_digests import recorded_digest

PART_OF = "zbi"


def labels(*, instance: str, component: str, name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def selector(*, instance: str, component: str) -> dict[str, str]:
    """The stable subset of labels used by selectors (selectors of StatefulSets cannot change)."""
    return {"app.kubernetes.io/instance": instance, "app.kubernetes.io/component": component}


def pod_security(uid: int) -> k8s.core.v1.PodSecurityContextArgs:
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid,
        fs_group=uid,
        # Re-owning a multi-hundred-GiB volume on every start would delay restarts by minutes.
        fs_group_change_policy="OnRootMismatch",
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def container_security(uid: int) -> k8s.core.v1.SecurityContextArgs:
    return k8s.core.v1.SecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid,
        allow_privilege_escalation=False,
        privileged=False,
        read_only_root_filesystem=True,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def resources(config: ResourcesConfig) -> k8s.core.v1.ResourceRequirementsArgs:
    return k8s.core.v1.ResourceRequirementsArgs(
        requests={"cpu": config.cpu, "memory": config.memory}, limits=config.limits()
    )


def cpu_utilization(percent: int) -> k8s.autoscaling.v2.MetricSpecArgs:
    """An HPA metric: average CPU use across the target's pods, as a share of their requests."""
    return k8s.autoscaling.v2.MetricSpecArgs(
        type="Resource",
        resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
            name="cpu",
            target=k8s.autoscaling.v2.MetricTargetArgs(type="Utilization", average_utilization=percent),
        ),
    )


def zone_spread(match_labels: dict[str, str], *, strict: bool) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    """strict: replicas that hold zonal volumes must start out in different zones (one zone outage then takes
    out one replica); stateless tiers only prefer it, so a full zone never blocks a scale-up."""
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key="topology.kubernetes.io/zone",
            when_unsatisfiable="DoNotSchedule" if strict else "ScheduleAnyway",
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match_labels),
        )
    ]


def host_anti_affinity(match_labels: dict[str, str]) -> k8s.core.v1.AffinityArgs:
    return k8s.core.v1.AffinityArgs(
        pod_anti_affinity=k8s.core.v1.PodAntiAffinityArgs(
            required_during_scheduling_ignored_during_execution=[
                k8s.core.v1.PodAffinityTermArgs(
                    topology_key="kubernetes.io/hostname",
                    label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match_labels),
                )
            ]
        )
    )


def disruption_budget(ctx: Any, app: str, component: str, match: dict[str, str], *, replicas: int) -> None:
    """One pod at a time may be evicted. Only with two or more replicas: a PDB over a single pod would block every
    node drain."""
    if replicas < 2:
        return
    k8s.policy.v1.PodDisruptionBudget(
        f"{ctx.name}-{app}-pdb",
        metadata=ctx.meta(f"{app}-pdb", component=component, app=app),
        spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
            max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match)
        ),
        opts=ctx.in_namespace,
    )


def load_balancer_address(status: Any) -> str:
    """The DNS name (or IP) a LoadBalancer Service got; empty while it has none (never a placeholder)."""
    ingress = (status.load_balancer.ingress or []) if status and status.load_balancer else []
    if not ingress:
        return ""
    return str(ingress[0].hostname or ingress[0].ip or "")


def image_ref(repository: str, tag: str, digest: str | None) -> str:
    """`repository:tag@digest`: the given digest, else the one tools/pin_images.py recorded for the tag, if any."""
    digest = digest or recorded_digest(repository, tag)
    return f"{repository}:{tag}@{digest}" if digest else f"{repository}:{tag}"


class KubernetesObject(pulumi.CustomResource):
    """Any Kubernetes object by apiVersion/kind, with top-level fields. pulumi-kubernetes' CustomResource only
    carries `spec`, but some objects (VolumeSnapshotClass) keep their fields at the top level."""

    def __init__(
        self,
        resource_name: str,
        *,
        api_version: str,
        kind: str,
        metadata: k8s.meta.v1.ObjectMetaArgs,
        fields: dict[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(version=k8s_version()))
        props = {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}
        super().__init__(f"kubernetes:{api_version}:{kind}", resource_name, props, opts)


def k8s_version() -> str:
    """The installed pulumi-kubernetes, so a raw object uses the same provider plugin as every other."""
    from importlib.metadata import version

    return version("pulumi_kubernetes")
