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


def volume_tags(*, stack: str, instance: str) -> dict[str, str]:
    return {BACKUP_TAG: "true", INSTANCE_TAG: instance, STACK_TAG: stack}


def policy_target_tags(stack: str) -> dict[str, str]:
    """Every zBI chain volume of `stack`: DLM requires all of these tags on a volume it snapshots."""
    return {BACKUP_TAG: "true", STACK_TAG: stack}


def snapshot_filters(*, stack: str, instance: str) -> dict[str, list[str]]:
    """EC2 DescribeSnapshots filters for one instance's completed snapshots (or copies) of `stack`."""
    return {
        f"tag:{INSTANCE_TAG}": [instance],
        f"tag:{STACK_TAG}": [stack],
        "status": ["completed"],
    }
