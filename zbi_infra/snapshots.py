"""The contract between chain volumes, their snapshots and the DR stack, defined once.

The EBS CSI driver writes `volume_tags` on every chain volume (StorageClass `tagSpecification_N`); Data Lifecycle
Manager selects volumes by `policy_target_tags` (a subset) and copies every volume tag onto each snapshot and its
cross-region copy (`copy_tags`); the DR stack finds an instance's newest copy with `snapshot_filters`, which name
only tags the volumes carry. Tests check the chain end to end.
"""

from __future__ import annotations

BACKUP_TAG = "zbi.io/backup"
INSTANCE_TAG = "zbi.io/instance"
STACK_TAG = "zbi.io/stack"
# Written by DLM on the snapshots it takes (tags_to_add), naming the policy that took them.
POLICY_TAG = "zbi.io/snapshot-policy"
# The driver name of every snapshot zBI restores from (EBS CSI).
EBS_CSI_DRIVER = "ebs.csi.aws.com"
# The claim a volume was made for. StorageClasses are cluster-wide: a claim in another tenant's namespace may name this
# instance's class, and its volume then carries this instance's tags; only these two, which the driver fills in from
# the claim (aws-ebs-csi-driver docs/tagging.md, "runtime string interpolation"; its chart runs the provisioner with
# --extra-create-metadata), say whose claim it was. The DR lookup requires them.
PVC_NAMESPACE_TAG = "zbi.io/pvc-namespace"
PVC_NAME_TAG = "zbi.io/pvc-name"
CLAIM_TEMPLATES = {PVC_NAMESPACE_TAG: "{{ .PVCNamespace }}", PVC_NAME_TAG: "{{ .PVCName }}"}


def volume_tags(*, stack: str, instance: str) -> dict[str, str]:
    """The tags a chain StorageClass writes on its volumes (the claim's two as templates the driver fills in)."""
    return {BACKUP_TAG: "true", INSTANCE_TAG: instance, STACK_TAG: stack, **CLAIM_TEMPLATES}


def claim_volume_tags(tags: dict[str, str], *, namespace: str, claim: str) -> dict[str, str]:
    """The tags a volume made from `tags` for the claim `namespace/claim` carries (the driver's interpolation)."""
    filled = {"{{ .PVCNamespace }}": namespace, "{{ .PVCName }}": claim}
    return {key: filled.get(value, value) for key, value in tags.items()}


def policy_target_tags(stack: str) -> dict[str, str]:
    """Every zBI chain volume of `stack`: DLM requires all of these tags on a volume it snapshots."""
    return {BACKUP_TAG: "true", STACK_TAG: stack}


def snapshot_filters(*, stack: str, instance: str, namespace: str, claim_pattern: str) -> dict[str, list[str]]:
    """EC2 DescribeSnapshots filters for one instance's completed snapshots (or copies) of `stack`, taken of volumes
    claimed in the instance's own namespace by its chain-data claims (`claim_pattern`, EC2 filter wildcards)."""
    return {
        f"tag:{INSTANCE_TAG}": [instance],
        f"tag:{STACK_TAG}": [stack],
        f"tag:{PVC_NAMESPACE_TAG}": [namespace],
        f"tag:{PVC_NAME_TAG}": [claim_pattern],
        "status": ["completed"],
    }
