"""The disaster-recovery stack: a pilot light in another region that restores the primary's instances on demand.

Inactive (default): VPC, a small EKS cluster and the snapshot class, while DLM keeps copying snapshots in.
Activated (`zbi:dr.activate: true`): every instance of the primary comes up here, each replica's volume created from
the newest snapshot copy, and the DNS failover records point here.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_aws as aws
import role_primary

from zbi_infra.config import StackConfig, StackRole, load_stack_config
from zbi_infra.config.recovery import BackupConfig
from zbi_infra.config.stack_file import read_stack_file
from zbi_infra.dns import FailoverRole
from zbi_infra.errors import ConfigError
from zbi_infra.node import SnapshotSource

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def primary_config(config: StackConfig) -> StackConfig:
    """The primary's validated config, from its stack file in this same project.

    Instance definitions are needed while the program runs (they decide which resources exist); a StackReference
    only gives values that resolve later, so it supplies the runtime values (keys, tags) and the file the shape."""
    assert config.dr is not None and config.platform is not None
    short_name = config.dr.primary_stack.split("/")[-1]
    path = PROJECT_ROOT / f"Pulumi.{short_name}.yaml"
    if not path.is_file():
        raise ConfigError(
            [f"zbi:dr.primaryStack: no {path.name} in this project. Fix: name the primary stack of this project"]
        )
    try:
        primary = load_stack_config(read_stack_file(short_name, path).config)
    except ConfigError as exc:
        raise ConfigError(
            [f"zbi:dr.primaryStack: the primary's stack file {path.name} is invalid: {p}" for p in exc.problems]
        ) from None
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


def newest_snapshots(primary_stack: str, region: str, instances: list[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in instances:
        result = aws.ebs.get_snapshot_ids(
            owners=["self"],
            region=region,
            filters=[
                aws.ebs.GetSnapshotIdsFilterArgs(name="tag:zbi.io/instance", values=[name]),
                aws.ebs.GetSnapshotIdsFilterArgs(name="tag:zbi.io/stack", values=[primary_stack]),
                aws.ebs.GetSnapshotIdsFilterArgs(name="status", values=["completed"]),
            ],
        )
        # get_snapshot_ids sorts by creation time, newest first.
        found[name] = result.ids[0] if result.ids else None
    return found


def build(config: StackConfig) -> None:
    assert config.dr is not None and config.platform is not None
    primary = primary_config(config)
    primary_stack = config.dr.primary_stack.split("/")[-1]
    snapshots: dict[str, str | None] = {}
    if config.dr.activate:
        snapshots = newest_snapshots(primary_stack, config.platform.region, sorted(primary.instances))
        missing = sorted(name for name, snapshot in snapshots.items() if snapshot is None)
        if missing and config.dr.require_snapshot:
            raise pulumi.RunError(
                f"no completed snapshot copy in {config.platform.region} for {', '.join(missing)}; "
                "set zbi:dr.requireSnapshot to false to let them sync from genesis"
            )
        for name in missing:
            pulumi.log.warn(f"instance {name}: no snapshot copy in {config.platform.region}; it will sync from genesis")

    reference = pulumi.StackReference(config.dr.primary_stack)
    dr_details = reference.get_output("disasterRecovery")
    dr_key_arn = dr_details.apply(lambda d: (d or {}).get("drKmsKeyArn", ""))
    provider, _, cluster = role_primary.build_platform(config, restore_kms_key_arns=[dr_key_arn])
    pulumi.export("activated", config.dr.activate)
    pulumi.export("primaryStack", config.dr.primary_stack)
    if not config.dr.activate:
        return

    restore = {
        name: SnapshotSource(
            driver="ebs.csi.aws.com", snapshot_handle=snapshot, snapshot_class=role_primary.SNAPSHOT_CLASS
        )
        for name, snapshot in snapshots.items()
        if snapshot is not None
    }
    restored = config.model_copy(update={"instances": primary.instances, "dns": config.dns or primary.dns})
    role_primary.build_zcash(restored, provider, cluster, restore=restore, failover_role=FailoverRole.SECONDARY)
    pulumi.export("restoredFrom", {name: snapshot for name, snapshot in snapshots.items()})
