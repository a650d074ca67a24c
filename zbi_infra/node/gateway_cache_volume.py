"""The volume of the gateway's history cache (zbi_infra/render/gateway_cache.py): one generic ephemeral volume per
replica, sized by history.cache.sizeGib.

Why an ephemeral volume (a PersistentVolumeClaim the pod owns) rather than an emptyDir with a sizeLimit: an emptyDir
lives on the node's root disk, shared with images and logs, and exceeding its sizeLimit evicts the pod, so a cache
that overshoots `max_size` for a few seconds (nginx's cache manager evicts after the fact) would take the replica
down; a claim is its own EBS volume of the cluster's default class (gp3), reported by the kubelet's
kubelet_volume_stats_* metrics (the cache's size on the dashboard), and full means failed writes, not an eviction.
It goes with the pod: a new replica starts cold (each replica fills its own cache). The ResourceQuota counts each
claim at its size, for every replica the HPA may run plus the one a rollout surges.
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

from zbi_infra.config.resources import ResourcesConfig, memory_mib
from zbi_infra.node.context import InstanceContext
from zbi_infra.render.gateway_cache import POD_CACHE_DIR, GatewayCache

VOLUME = "history-cache"


def history_cache(ctx: InstanceContext) -> GatewayCache | None:
    """The instance's gateway cache, or None when it has no history section or the cache is off."""
    history = ctx.config.history
    if history is None or not history.cache.enabled:
        return None
    return GatewayCache.of(history.cache)


def cache_volume(
    ctx: InstanceContext, cache: GatewayCache
) -> tuple[k8s.core.v1.VolumeArgs, k8s.core.v1.VolumeMountArgs]:
    """The replica's cache volume and its mount; counted in the instance's quota."""
    settings = ctx.config.gateway
    ctx.footprint.add_claims(settings.max_replicas + 1, cache.size_gib)
    volume = k8s.core.v1.VolumeArgs(
        name=VOLUME,
        ephemeral=k8s.core.v1.EphemeralVolumeSourceArgs(
            volume_claim_template=k8s.core.v1.PersistentVolumeClaimTemplateArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels={"app.kubernetes.io/component": "gateway"}),
                spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                    access_modes=["ReadWriteOnce"],
                    resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": f"{cache.size_gib}Gi"}),
                ),
            )
        ),
    )
    return volume, k8s.core.v1.VolumeMountArgs(name=VOLUME, mount_path=POD_CACHE_DIR)


def nginx_resources(config: ResourcesConfig, cache: GatewayCache | None) -> k8s.core.v1.ResourceRequirementsArgs:
    """The nginx container's resources: the configured ones, plus the cache's keys zone (shared memory nginx
    allocates at start, charged to the container) and what its fills in progress may hold, on both request and
    limit, so the memory the configuration budgets for connections, bodies and spliced batches stays theirs."""
    requests = {"cpu": config.cpu, "memory": config.memory}
    limits = dict(config.limits())
    if cache is not None:
        added = cache.keys_zone_mib + cache.fill_memory_mib
        requests["memory"] = f"{memory_mib(config.memory) + added}Mi"
        limits["memory"] = f"{memory_mib(limits['memory']) + added}Mi"
    return k8s.core.v1.ResourceRequirementsArgs(requests=requests, limits=limits)
