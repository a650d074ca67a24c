"""Full-node replicas of a history instance that start from the newest chain snapshot (config/history_scaling.py).

A StatefulSet's volumeClaimTemplates are immutable, so the template cannot follow a snapshot whose name changes.
It names one that never does — `<node>-newest`, through `dataSourceRef` — and a CronJob retakes that snapshot from
a ready replica every `snapshotIntervalHours`. (`dataSourceRef`, not `dataSource`: the API keeps it as written and
errors on a value it cannot honour, where `dataSource` drops it — and an empty volume is a sync from genesis.)
Every claim the StatefulSet controller creates for a replica above the floor is therefore restored from a snapshot
at most one interval old, whenever the autoscaler asks for it.

The floor's own claims are created here, before the StatefulSet, without that source (or from the DR/bootstrap
snapshot): on a first deploy no snapshot exists yet, and the floor must sync rather than wait for one. The
controller adopts a claim that already has its name. Claims of replicas scaled away are deleted (`whenScaled:
Delete`): a later scale-up restores the newest snapshot instead of reviving a stale volume, and idle volumes cost
nothing.

Rotation, without a shell (the kubectl image has none): the job's init containers run one kubectl command each, in
order — wait for replica 0 to be ready (synced), take `<node>-next` (it absorbs the change since the last rotation,
so what follows is short), delete `<node>-newest`, retake it (only the blocks of the last minutes differ), wait until
it is ready to use; the main container deletes `<node>-next`. A claim created while `<node>-newest` is briefly
absent waits: the CSI provisioner retries until its source exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import yaml

from zbi_infra import kube
from zbi_infra.config.history_scaling import HistoryScalingConfig
from zbi_infra.config.instance import InstanceConfig, NodeKind
from zbi_infra.kube import KubernetesObject
from zbi_infra.node.api_client import api_client_identity
from zbi_infra.node.context import DATA_VOLUME, SKIP_AWAIT, InstanceContext, tmp_volume
from zbi_infra.node.public_tls_renewal import KUBECTL

ROTATION = "chain-snapshot-rotation"
# On the rotation's ConfigMap: how often it runs, for `zbi cost` (fast snapshot restore bills an hour per rotation).
INTERVAL_ANNOTATION = "zbi.io/snapshot-interval-hours"
SNAPSHOT_API = "snapshot.storage.k8s.io"
MANIFESTS_DIR = "/manifests"
# The EBS CSI driver's VolumeSnapshotClass parameter for fast snapshot restore (aws-ebs-csi-driver docs/snapshot.md).
FSR_PARAMETER = "fastSnapshotRestoreAvailabilityZones"
# The newest snapshot can take hours the first time (a full copy); later ones are incremental.
FIRST_SNAPSHOT_TIMEOUT = "6h"
SCALED_NODE_KINDS = (NodeKind.ZEBRAD, NodeKind.ZAKURAD)


@dataclass(frozen=True)
class HistorySnapshots:
    """The CSI driver rotation snapshots are taken with, the zones fast snapshot restore covers, and the tags the
    driver writes on each snapshot (for cost allocation)."""

    driver: str
    zones: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    # What installs the snapshot CRDs (the EKS snapshot-controller add-on): the classes wait for it.
    after: tuple[pulumi.Resource, ...] = ()


@dataclass(frozen=True)
class ReplicaPlan:
    """What the full-node StatefulSet takes from history scaling (full_node.py)."""

    replicas: int
    ceiling: int
    elastic: bool
    # The claim template's source: the rotating snapshot (by dataSourceRef), or the restore snapshot (dataSource).
    template_source_ref: str | None
    template_source: str | None
    when_scaled: str


def scaling_of(config: InstanceConfig) -> HistoryScalingConfig | None:
    """The instance's scaling section when it is on (Zebra-family nodes only: zcashd runs on regtest only)."""
    history = config.history
    if history is None or not history.scaling.enabled or config.node.kind not in SCALED_NODE_KINDS:
        return None
    return history.scaling


def newest_snapshot(node_name: str) -> str:
    return f"{node_name}-newest"


def next_snapshot(node_name: str) -> str:
    return f"{node_name}-next"


def claim_name(node_name: str, ordinal: int) -> str:
    """The StatefulSet controller's name for a replica's claim: <template>-<statefulset>-<ordinal>."""
    return f"{DATA_VOLUME}-{node_name}-{ordinal}"


def replica_plan(ctx: InstanceContext, restore_snapshot: str | None) -> ReplicaPlan:
    node = ctx.config.node
    scaling = scaling_of(ctx.config)
    if scaling is None:
        return ReplicaPlan(node.replicas, node.replicas, False, None, restore_snapshot, "Retain")
    rotating = ctx.args.history_snapshots is not None
    return ReplicaPlan(
        replicas=scaling.floor(node.replicas),
        ceiling=scaling.max_replicas,
        elastic=True,
        template_source_ref=newest_snapshot(ctx.node_name) if rotating else None,
        template_source=None if rotating else restore_snapshot,
        # Without a rotating snapshot, a claim scaled away is worth keeping: a new one would sync from the start.
        when_scaled="Delete" if rotating else "Retain",
    )


def claim_spec(
    ctx: InstanceContext, *, source: str | None = None, source_ref: str | None = None
) -> k8s.core.v1.PersistentVolumeClaimSpecArgs:
    """A chain-data claim: the template's and the floor's share everything but their source."""
    return k8s.core.v1.PersistentVolumeClaimSpecArgs(
        access_modes=["ReadWriteOnce"],
        storage_class_name=ctx.args.storage_class_name,
        resources=k8s.core.v1.VolumeResourceRequirementsArgs(
            requests={"storage": f"{ctx.config.node.storage.size_gib}Gi"}
        ),
        data_source=k8s.core.v1.TypedLocalObjectReferenceArgs(
            api_group=SNAPSHOT_API, kind="VolumeSnapshot", name=source
        )
        if source
        else None,
        data_source_ref=k8s.core.v1.TypedObjectReferenceArgs(
            api_group=SNAPSHOT_API, kind="VolumeSnapshot", name=source_ref
        )
        if source_ref
        else None,
    )


def build_floor_claims(
    ctx: InstanceContext, plan: ReplicaPlan, match: dict[str, str], restore_snapshot: str | None
) -> list[pulumi.Resource]:
    """The floor replicas' claims, before the StatefulSet: they sync (or restore the DR snapshot), never wait for
    the rotating one. None without elastic replicas."""
    if not plan.elastic or plan.template_source_ref is None:
        return []
    return [
        k8s.core.v1.PersistentVolumeClaim(
            f"{ctx.name}-{claim_name(ctx.node_name, ordinal)}",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=claim_name(ctx.node_name, ordinal), namespace=ctx.namespace, labels=match, annotations=SKIP_AWAIT
            ),
            spec=claim_spec(ctx, source=restore_snapshot),
            # Chain data is days of sync: never deleted with the stack by accident.
            opts=pulumi.ResourceOptions.merge(ctx.in_namespace, pulumi.ResourceOptions(retain_on_delete=True)),
        )
        for ordinal in range(plan.replicas)
    ]


def rotation_steps(node_name: str, namespace: str, interval_hours: int) -> list[tuple[str, list[str]]]:
    """(container name, kubectl arguments) in the order the job runs them; the last is the main container."""
    newest, following = newest_snapshot(node_name), next_snapshot(node_name)
    ns = ["-n", namespace]
    ready = "--for=jsonpath={.status.readyToUse}=true"
    return [
        ("wait-synced", ["wait", *ns, "--for=condition=Ready", f"pod/{node_name}-0", "--timeout=30m"]),
        ("drop-next", ["delete", *ns, "volumesnapshot", following, "--ignore-not-found", "--wait=true"]),
        ("take-next", ["create", *ns, "-f", f"{MANIFESTS_DIR}/next.yaml"]),
        ("next-ready", ["wait", *ns, ready, f"volumesnapshot/{following}", f"--timeout={FIRST_SNAPSHOT_TIMEOUT}"]),
        (
            "drop-newest",
            ["delete", *ns, "volumesnapshot", newest, "--ignore-not-found", "--wait=true", "--timeout=30m"],
        ),
        ("take-newest", ["create", *ns, "-f", f"{MANIFESTS_DIR}/newest.yaml"]),
        ("newest-ready", ["wait", *ns, ready, f"volumesnapshot/{newest}", f"--timeout={interval_hours}h"]),
        ("drop-next-after", ["delete", *ns, "volumesnapshot", following, "--ignore-not-found"]),
    ]


def rotation_manifests(node_name: str, namespace: str, *, snapshot_class: str, newest_class: str) -> dict[str, str]:
    """The two VolumeSnapshots the job creates, both of replica 0's claim (always present: the floor is >= 2)."""

    def snapshot(name: str, klass: str) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": f"{SNAPSHOT_API}/v1",
                "kind": "VolumeSnapshot",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "zbi"}},
                "spec": {
                    "volumeSnapshotClassName": klass,
                    "source": {"persistentVolumeClaimName": claim_name(node_name, 0)},
                },
            },
            sort_keys=False,
        )

    return {
        "next.yaml": snapshot(next_snapshot(node_name), snapshot_class),
        "newest.yaml": snapshot(newest_snapshot(node_name), newest_class),
    }


def snapshot_class_names(instance: str) -> tuple[str, str]:
    """(the class of `-next`, the class of `-newest`): only the latter carries fast snapshot restore."""
    return f"zbi-{instance}-rotation", f"zbi-{instance}-rotation-fsr"


def build_snapshot_rotation(ctx: InstanceContext) -> k8s.batch.v1.CronJob | None:
    scaling = scaling_of(ctx.config)
    snapshots = ctx.args.history_snapshots
    if scaling is None:
        return None
    if snapshots is None:
        pulumi.log.warn(
            f"instance {ctx.name}: history.scaling has no snapshot driver on this platform: replicas above the "
            "floor sync from peers instead of restoring the newest snapshot",
            resource=ctx.component,
        )
        return None
    plain, fast = snapshot_class_names(ctx.name)
    newest_class = fast if scaling.fast_snapshot_restore else plain
    tag_parameters = {
        f"tagSpecification_{i}": f"{k}={v}" for i, (k, v) in enumerate(sorted(snapshots.tags.items()), start=1)
    }
    for class_name, fsr in ((plain, False), (fast, True)):
        if fsr and not scaling.fast_snapshot_restore:
            continue
        parameters = {**tag_parameters, **({FSR_PARAMETER: ",".join(snapshots.zones)} if fsr else {})}
        KubernetesObject(
            f"{ctx.name}-{class_name}",
            api_version=f"{SNAPSHOT_API}/v1",
            kind="VolumeSnapshotClass",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=class_name, labels={"app.kubernetes.io/managed-by": "zbi"}),
            # Delete: a rotated-out snapshot is garbage (and its fast snapshot restore stops billing with it).
            fields={"driver": snapshots.driver, "deletionPolicy": "Delete", "parameters": parameters},
            opts=ctx.child(depends_on=list(snapshots.after)),
        )
    return _rotation_job(ctx, scaling, plain, newest_class)


def _rotation_job(
    ctx: InstanceContext, scaling: HistoryScalingConfig, plain: str, newest_class: str
) -> k8s.batch.v1.CronJob:
    labels = kube.labels(instance=ctx.name, component=ROTATION, name=ROTATION)
    account = api_client_identity(
        ctx,
        ROTATION,
        [
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=[SNAPSHOT_API],
                resources=["volumesnapshots"],
                verbs=["get", "list", "watch", "create", "delete"],
            ),
            # `kubectl wait` on replica 0's readiness.
            k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["pods"], verbs=["get", "list", "watch"]),
        ],
    )
    manifests = k8s.core.v1.ConfigMap(
        f"{ctx.name}-{ROTATION}",
        metadata=ctx.meta(
            ROTATION,
            component=ROTATION,
            app=ROTATION,
            annotations={INTERVAL_ANNOTATION: str(scaling.snapshot_interval_hours)},
        ),
        data=rotation_manifests(ctx.node_name, ctx.namespace, snapshot_class=plain, newest_class=newest_class),
        opts=ctx.in_namespace,
    )
    resources = k8s.core.v1.ResourceRequirementsArgs(
        requests={"cpu": "10m", "memory": "32Mi"}, limits={"cpu": "100m", "memory": "64Mi"}
    )
    mounts = [
        k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
        k8s.core.v1.VolumeMountArgs(name="manifests", mount_path=MANIFESTS_DIR, read_only=True),
    ]
    containers = [
        k8s.core.v1.ContainerArgs(
            name=step,
            image=f"{KUBECTL.repository}:{KUBECTL.tag}",
            image_pull_policy="IfNotPresent",
            command=[KUBECTL.binary, *args],
            env=[k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp")],
            resources=resources,
            security_context=kube.container_security(KUBECTL.uid),
            volume_mounts=mounts,
        )
        for step, args in rotation_steps(ctx.node_name, ctx.namespace, scaling.snapshot_interval_hours)
    ]
    *init, main = containers
    ctx.footprint.add_pods(1, [main], init)
    skips = ctx.checkov_skips(
        "CKV_K8S_38=kubectl needs its token to take snapshots; the Role allows volume snapshots and reading pods only",
        "CKV_K8S_8=a run-to-completion job: no liveness probe",
        "CKV_K8S_9=a run-to-completion job: no readiness probe",
        digest=None,
    )
    interval = scaling.snapshot_interval_hours
    return k8s.batch.v1.CronJob(
        f"{ctx.name}-{ROTATION}",
        metadata=ctx.meta(ROTATION, component=ROTATION, app=ROTATION, annotations=skips),
        spec=k8s.batch.v1.CronJobSpecArgs(
            schedule=f"7 */{interval} * * *" if interval < 24 else "7 3 * * *",
            time_zone="Etc/UTC",
            concurrency_policy="Forbid",
            successful_jobs_history_limit=1,
            failed_jobs_history_limit=3,
            job_template=k8s.batch.v1.JobTemplateSpecArgs(
                spec=k8s.batch.v1.JobSpecArgs(
                    backoff_limit=2,
                    # A first (full) snapshot may take hours; Forbid keeps runs from overlapping meanwhile.
                    active_deadline_seconds=max(interval * 3600 - 600, 6 * 3600),
                    ttl_seconds_after_finished=86400,
                    template=k8s.core.v1.PodTemplateSpecArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels, annotations=skips),
                        spec=k8s.core.v1.PodSpecArgs(
                            service_account_name=ROTATION,
                            automount_service_account_token=True,
                            restart_policy="OnFailure",
                            security_context=kube.pod_security(KUBECTL.uid),
                            init_containers=init,
                            containers=[main],
                            volumes=[
                                tmp_volume(),
                                k8s.core.v1.VolumeArgs(
                                    name="manifests", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=ROTATION)
                                ),
                            ],
                            enable_service_links=False,
                        ),
                    ),
                )
            ),
        ),
        opts=ctx.child(depends_on=[account, manifests]),
    )
