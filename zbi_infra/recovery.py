"""What a disaster-recovery stack needs from its primary: the primary's instances, and each one's newest snapshot copy.

Instance definitions are needed while the program runs (they decide which resources exist); a StackReference only
gives values that resolve later, so the primary's stack file in this same project supplies the shape and the
StackReference the runtime values (the DR-region key).
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_aws as aws

from zbi_infra.config import StackConfig, StackRole
from zbi_infra.config.recovery import BackupConfig
from zbi_infra.config.stack import load_project_stack
from zbi_infra.errors import ConfigError
from zbi_infra.node.context import DATA_VOLUME, namespace_of
from zbi_infra.snapshots import snapshot_filters


def primary_short_name(config: StackConfig) -> str:
    assert config.dr is not None
    return config.dr.primary_stack.split("/")[-1]


def primary_config(config: StackConfig, project_root: Path) -> StackConfig:
    """The primary's validated config, from its stack file in `project_root`."""
    assert config.dr is not None and config.platform is not None
    short_name = primary_short_name(config)
    primary = load_project_stack(
        project_root,
        short_name,
        key="zbi:dr.primaryStack",
        missing_fix="name the primary stack of this project",
        which="the primary's stack file ",
    )
    if primary.role is not StackRole.PRIMARY:
        raise ConfigError([f"zbi:dr.primaryStack: stack {short_name} has role {primary.role.value}, not primary"])
    backup_region = (primary.backup or BackupConfig()).dr_region
    if backup_region != config.platform.region:
        raise ConfigError(
            [
                f"zbi:platform.region: {config.platform.region}, but {short_name} copies its snapshots to "
                f"{backup_region}. Fix: deploy this DR stack in {backup_region}, or change "
                f"zbi:backup.drRegion of {short_name}"
            ]
        )
    return primary


def newest_snapshots(primary_stack: str, instances: list[str], provider: aws.Provider) -> dict[str, str | None]:
    """Each instance's newest completed snapshot copy in the provider's region, or None: only copies of volumes that
    the instance's own chain-data claims made (another tenant's claim on this instance's class does not count)."""
    found: dict[str, str | None] = {}
    for name in instances:
        result = aws.ebs.get_snapshot_ids(
            owners=["self"],
            filters=[
                aws.ebs.GetSnapshotIdsFilterArgs(name=key, values=values)
                for key, values in snapshot_filters(
                    stack=primary_stack,
                    instance=name,
                    namespace=namespace_of(name),
                    # StatefulSet claims are <template>-<statefulset>-<ordinal>: the node's chain data, any replica.
                    claim_pattern=f"{DATA_VOLUME}-*",
                ).items()
            ],
            opts=pulumi.InvokeOptions(provider=provider),
        )
        # get_snapshot_ids sorts by creation time, newest first.
        found[name] = result.ids[0] if result.ids else None
    return found
