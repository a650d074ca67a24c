"""Chain-data and cache StorageClasses. The only cloud-specific piece a ZcashNode is handed."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra.config.instance import StorageConfig
from zbi_infra.kube import KubernetesObject

# The class a claim without storageClassName gets (Kubernetes' DefaultStorageClass admission).
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def ebs_storage_class(
    name: str,
    *,
    storage: StorageConfig | None,
    kms_key_arn: pulumi.Input[str],
    tags: dict[str, str],
    class_name: str | None = None,
    default: bool = False,
    opts: pulumi.ResourceOptions | None = None,
) -> k8s.storage.v1.StorageClass:
    """gp3 on the EBS CSI driver: encrypted with our key, bound in the pod's zone, expandable, and retained when
    the claim is deleted — a multi-day sync is never thrown away by a `pulumi destroy` or a deleted PVC.

    `storage` None: gp3's baseline (3,000 IOPS, 125 MiB/s, included in the price), which EBS gives a volume of any
    size; provisioned IOPS above it are capped at 500 per GiB (tests/fixtures/upstream/aws/gp3-limits.json), so a
    class with provisioned IOPS leaves a small claim Pending."""
    provisioned = {"iops": str(storage.iops), "throughput": str(storage.throughput_mibps)} if storage else {}
    parameters: dict[str, pulumi.Input[str]] = {
        "type": "gp3",
        "encrypted": "true",
        "kmsKeyId": kms_key_arn,
        **provisioned,
        "csi.storage.k8s.io/fstype": "ext4",
    }
    # aws-ebs-csi-driver docs/tagging.md: tagSpecification_N = "key=value".
    for index, (key, value) in enumerate(sorted(tags.items()), start=1):
        parameters[f"tagSpecification_{index}"] = f"{key}={value}"
    return k8s.storage.v1.StorageClass(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=class_name or name,
            labels={"app.kubernetes.io/managed-by": "zbi"},
            annotations={DEFAULT_CLASS_ANNOTATION: "true"} if default else None,
        ),
        provisioner="ebs.csi.aws.com",
        volume_binding_mode="WaitForFirstConsumer",
        allow_volume_expansion=True,
        reclaim_policy="Retain",
        parameters=parameters,
        opts=opts,
    )


def ebs_volume_snapshot_class(
    name: str, *, tags: dict[str, str], opts: pulumi.ResourceOptions | None = None
) -> KubernetesObject:
    """Kubernetes-side snapshots on the EBS CSI driver (CRDs from the EKS snapshot-controller add-on).

    Retain: deleting a VolumeSnapshot object must never delete the EBS snapshot behind it."""
    parameters = {f"tagSpecification_{i}": f"{k}={v}" for i, (k, v) in enumerate(sorted(tags.items()), start=1)}
    return KubernetesObject(
        name,
        api_version="snapshot.storage.k8s.io/v1",
        kind="VolumeSnapshotClass",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, labels={"app.kubernetes.io/managed-by": "zbi"}),
        fields={"driver": "ebs.csi.aws.com", "deletionPolicy": "Retain", "parameters": parameters},
        opts=opts,
    )
