"""ZbiPlatform: a whole zBI stack as one component.

- role primary: a regional AWS provider, ZbiVpc across the region's zones, ZbiCluster, the chain-data StorageClass of
  each instance and the snapshot class, DLM backups copied to the DR region, the Zcash instances, their
  administrators' EKS access and their DNS failover records;
- role dr: the same platform, small, in the DR region; once activated, the primary's instances restored from their
  newest snapshot copies, with SECONDARY failover records;
- role local: the instances on an existing Kubernetes cluster, no AWS.

A stack program is `ZbiPlatform(stack, ZbiPlatformArgs(config=...))` plus its exports; any other Pulumi program can
build the same platform. Everything it creates was once created at the top of the stack program: each direct child
carries an alias to its old place, so existing deployments keep their resources.

The component sequences the pieces; the wiring lives by concept: the instances in zbi_infra/platform_instances.py,
monitoring in zbi_infra/platform_monitoring.py, the control plane in zbi_infra/platform_control_plane.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from zbi_infra.admission import admission_policies
from zbi_infra.backup import ZbiBackups, ZbiBackupsArgs
from zbi_infra.cluster import ZbiCluster, ZbiClusterArgs
from zbi_infra.config import LocalConfig, StackConfig, StackRole
from zbi_infra.config.access import AccessFile
from zbi_infra.config.control_plane import ControlPlaneConfig
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.config.recovery import BackupConfig
from zbi_infra.control_plane import ZbiControlPlane
from zbi_infra.dns import FailoverRole
from zbi_infra.errors import ConfigError
from zbi_infra.monitoring.component import ZbiMonitoring
from zbi_infra.node import SnapshotSource, ZcashNode
from zbi_infra.platform_control_plane import reconciling_control_plane
from zbi_infra.platform_instances import (
    AwsPlacement,
    InstanceWiring,
    WiredInstances,
    aws_instances,
    local_instances,
    moved,
)
from zbi_infra.platform_monitoring import platform_monitoring
from zbi_infra.recovery import newest_snapshots, primary_short_name
from zbi_infra.snapshots import EBS_CSI_DRIVER, STACK_TAG, policy_target_tags
from zbi_infra.storage import ebs_volume_snapshot_class
from zbi_infra.vpc import ZbiVpc, ZbiVpcArgs
from zbi_infra.zones import lookup_zones, select_zones

SNAPSHOT_CLASS = "zbi-ebs"


@dataclass(frozen=True)
class ZbiPlatformArgs:
    config: StackConfig
    # role dr: the primary's validated config (zbi_infra.recovery.primary_config) and its DR-region key, from the
    # primary's stack outputs.
    primary: StackConfig | None = None
    primary_dr_key_arn: pulumi.Input[str] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # Instance -> its access file (zbi_infra.config.access.instance_access_files): those instances get a gateway.
    access: Mapping[str, AccessFile] = field(default_factory=dict)
    # zBI stack -> its validated config, for each stack `zbi:controlPlane.stacks` keeps converged (read at the edge).
    reconciled_stacks: Mapping[str, StackConfig] = field(default_factory=dict)


class ZbiPlatform(pulumi.ComponentResource):
    cluster: ZbiCluster | None
    vpc: ZbiVpc | None
    nodes: dict[str, ZcashNode]
    backups: ZbiBackups | None
    # Instance -> its CA's certificate (zbi_infra/tls.py): what that instance's clients trust, and nothing else.
    ca_cert_pems: dict[str, pulumi.Output[str]]
    restored_from: dict[str, str | None]
    # role primary with backups: what the DR stack reads through its StackReference.
    disaster_recovery: dict[str, object] | None
    monitoring: ZbiMonitoring | None
    control_plane: ZbiControlPlane | None

    def __init__(self, name: str, args: ZbiPlatformArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zbi:platform:ZbiPlatform", name, None, opts)
        self._stack = name
        self._config = args.config
        self._access = dict(args.access)
        self.cluster = self.vpc = self.backups = None
        self.nodes = {}
        self.ca_cert_pems = {}
        self.restored_from = {}
        self.disaster_recovery = None
        self._instance_configs: dict[str, InstanceConfig] = {}
        config = args.config
        # The monitoring probe's key for the gateways' JSON-RPC (one per stack); the gateways hold only its hash.
        self._probe_key: pulumi.Output[str] | None = None
        if config.monitoring.enabled and self._access:
            self._probe_key = random.RandomPassword(
                f"{name}-probe-key", length=48, special=False, opts=pulumi.ResourceOptions(parent=self)
            ).result
        if config.role is StackRole.LOCAL:
            self._local()
        else:
            self._aws(args)
        self.control_plane = None
        if config.control_plane is not None and config.control_plane.enabled and self.cluster is not None:
            self.control_plane = self._control_plane(config.control_plane, args.reconciled_stacks)
        self.monitoring = self._monitoring() if config.monitoring.enabled else None
        self.register_outputs({"caCertPems": self.ca_cert_pems})

    # ---- control plane -----------------------------------------------------------------------------------------

    def _control_plane(self, control: ControlPlaneConfig, reconciled: Mapping[str, StackConfig]) -> ZbiControlPlane:
        assert self.cluster is not None and self._config.cluster is not None
        return reconciling_control_plane(
            self._stack,
            control,
            reconciled,
            own_config=self._config,
            cluster=self.cluster,
            cluster_config=self._config.cluster,
            parent=self,
            aws_provider=self._aws_provider,
            kubernetes=self._kubernetes,
        )

    # ---- options -----------------------------------------------------------------------------------------------

    def _moved(self, **options: object) -> pulumi.ResourceOptions:
        """A direct child that used to sit at the top of the stack program: its alias keeps its old URN."""
        return moved(self, **options)

    # ---- monitoring --------------------------------------------------------------------------------------------

    def _monitoring(self) -> ZbiMonitoring:
        return platform_monitoring(
            self._stack,
            self._config,
            parent=self,
            kubernetes=self._kubernetes,
            cluster=self.cluster,
            backups=self.backups,
            nodes=self.nodes,
            instances=self._instance_configs,
            gateways=frozenset(name for name in self._access if name in self.nodes),
            probe_key=self._probe_key,
            control_plane=self.control_plane is not None,
        )

    # ---- instances ---------------------------------------------------------------------------------------------

    def _wiring(self) -> InstanceWiring:
        return InstanceWiring(stack=self._stack, parent=self, access=self._access, probe_key=self._probe_key)

    def _add(self, wired: WiredInstances) -> None:
        self.nodes.update(wired.nodes)
        self.ca_cert_pems.update(wired.ca_cert_pems)

    # ---- local -------------------------------------------------------------------------------------------------

    def _local(self) -> None:
        local = self._config.local or LocalConfig()
        # The kubeconfig of the machine running Pulumi (~/.kube/config or $KUBECONFIG), at the chosen context.
        provider = k8s.Provider(
            "local", context=local.kubeconfig_context, enable_server_side_apply=True, opts=self._moved()
        )
        self._kubernetes = provider
        self._instance_configs = dict(self._config.instances)
        self._add(
            local_instances(
                self._wiring(), self._config.instances, storage_class=local.storage_class, provider=provider
            )
        )

    # ---- AWS ---------------------------------------------------------------------------------------------------

    def _aws(self, args: ZbiPlatformArgs) -> None:
        config = args.config
        platform, cluster_config = config.platform, config.cluster
        assert platform is not None and cluster_config is not None
        tags = {STACK_TAG: self._stack, "zbi.io/managed-by": "pulumi", **config.tags, **platform.tags, **args.tags}
        self._tags = tags
        # Every AWS resource and invoke names its provider: nothing depends on an ambient default region.
        provider = self._regional_provider(platform.region)
        self._aws_provider = provider
        zones = select_zones(
            lookup_zones(platform.region, provider=provider),
            region=platform.region,
            count=platform.availability_zone_count,
            zone_ids=platform.zone_ids,
            config_key="zbi:platform",
        )
        self.region = platform.region
        self._zone_names = tuple(zone.name for zone in zones)
        self.vpc = ZbiVpc(
            f"{cluster_config.name}-net",
            ZbiVpcArgs(
                region=platform.region,
                zones=zones,
                cidr=platform.vpc_cidr,
                nat_strategy=platform.nat_strategy,
                flow_logs=platform.flow_logs,
                cluster_name=cluster_config.name,
                tags=tags,
            ),
            opts=self._moved(providers={"aws": provider}),
        )
        restore_keys = [args.primary_dr_key_arn] if args.primary_dr_key_arn is not None else []
        cluster = ZbiCluster(
            cluster_config.name,
            ZbiClusterArgs(
                config=cluster_config,
                vpc_id=self.vpc.vpc_id,
                zones=zones,
                private_subnet_ids_by_zone=self.vpc.private_subnet_ids_by_zone,
                public_subnet_ids=self.vpc.public_subnet_ids,
                tags=tags,
                restore_kms_key_arns=restore_keys,
                region=platform.region,
            ),
            opts=self._moved(providers={"aws": provider}),
        )
        self.cluster = cluster
        self._kubernetes = cluster.provider
        ebs_volume_snapshot_class(
            SNAPSHOT_CLASS,
            tags={STACK_TAG: self._stack},
            opts=self._moved(provider=self.cluster.provider, depends_on=[self.cluster.snapshot_controller]),
        )
        admission_policies(pulumi.ResourceOptions(parent=self, provider=self.cluster.provider))
        if config.role is StackRole.PRIMARY:
            self.backups = self._backups(provider)
            bootstrap = {
                name: SnapshotSource(EBS_CSI_DRIVER, instance.node.bootstrap_snapshot_id, SNAPSHOT_CLASS)
                for name, instance in config.instances.items()
                if instance.node.bootstrap_snapshot_id
            }
            self._instances(config.instances, provider, restore=bootstrap, role=FailoverRole.PRIMARY)
            return
        assert config.dr is not None and args.primary is not None
        if not config.dr.activate:
            return
        self.restored_from = newest_snapshots(primary_short_name(config), sorted(args.primary.instances), provider)
        missing = sorted(name for name, snapshot in self.restored_from.items() if snapshot is None)
        if missing and config.dr.require_snapshot:
            # A configuration the region cannot serve yet: refused before the instances are registered (exit 2).
            raise ConfigError(
                [f"zbi:dr.requireSnapshot: no completed snapshot copy in {platform.region} for {', '.join(missing)}. "
                 "Fix: wait for DLM's next copy, or set zbi:dr.requireSnapshot to false to let them sync from genesis"]
            )  # fmt: skip
        for name in missing:
            pulumi.log.warn(f"instance {name}: no snapshot copy in {platform.region}; it will sync from genesis")
        restore = {
            name: SnapshotSource(EBS_CSI_DRIVER, snapshot, SNAPSHOT_CLASS)
            for name, snapshot in self.restored_from.items()
            if snapshot is not None
        }
        self._config = config.model_copy(update={"dns": config.dns or args.primary.dns})
        self._instances(args.primary.instances, provider, restore=restore, role=FailoverRole.SECONDARY)

    def _regional_provider(self, region: str) -> aws.Provider:
        return aws.Provider(
            f"aws-{region}",
            region=region,
            default_tags=aws.ProviderDefaultTagsArgs(tags=self._tags),
            opts=self._moved(),
        )

    def _instances(
        self,
        instances: dict[str, InstanceConfig],
        provider: aws.Provider,
        *,
        restore: dict[str, SnapshotSource],
        role: FailoverRole,
    ) -> None:
        assert self.cluster is not None and self.vpc is not None and self._config.cluster is not None
        self._instance_configs = dict(instances)
        placement = AwsPlacement(
            cluster=self.cluster,
            cluster_config=self._config.cluster,
            vpc_id=self.vpc.vpc_id,
            region=self.region,
            zone_names=self._zone_names,
            tags=self._tags,
            provider=provider,
            dns=self._config.dns,
        )
        self._add(aws_instances(self._wiring(), placement, instances, restore=restore, role=role))

    def _backups(self, provider: aws.Provider) -> ZbiBackups | None:
        config = self._config
        assert config.platform is not None and self.cluster is not None
        backup = config.backup or BackupConfig()
        if not backup.enabled:
            pulumi.log.warn("zbi:backup.enabled is false: chain data has no snapshots and no copy in another region")
            return None
        dr_provider = self._regional_provider(backup.dr_region)
        backups = ZbiBackups(
            f"{self._stack}-backups",
            ZbiBackupsArgs(
                stack=self._stack,
                source_kms_key_arn=self.cluster.ebs_kms_key_arn,
                region=config.platform.region,
                dr_region=backup.dr_region,
                interval_hours=backup.interval_hours,
                retain_count=backup.retain_count,
                dr_retain_days=backup.dr_retain_days,
                tags=self._tags,
            ),
            dr_provider=dr_provider,
            opts=self._moved(providers={"aws": provider}),
        )
        self.disaster_recovery = {
            "drRegion": backup.dr_region,
            "drKmsKeyArn": backups.dr_kms_key_arn,
            "snapshotTags": policy_target_tags(self._stack),
            "instances": sorted(config.instances),
        }
        return backups
