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
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from zbi_infra import load_balancer_controller, public_tls
from zbi_infra.access_keys import key_hash
from zbi_infra.admission import admission_policies
from zbi_infra.backup import ZbiBackups, ZbiBackupsArgs
from zbi_infra.cluster import ACCESS_POLICIES, ZbiCluster, ZbiClusterArgs
from zbi_infra.config import LocalConfig, StackConfig, StackRole
from zbi_infra.config.access import AccessFile
from zbi_infra.config.control_plane import ControlPlaneConfig
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.config.monitoring import LOCAL_DEFAULTS, MonitoringConfig
from zbi_infra.config.recovery import BackupConfig
from zbi_infra.control_plane import (
    STACKS_NAMESPACE,
    ZbiControlPlane,
    ZbiControlPlaneArgs,
    reconciler_service_account,
)
from zbi_infra.dns import FailoverRole, failover_record
from zbi_infra.errors import ConfigError
from zbi_infra.history_export_aws import history_exports
from zbi_infra.instance_admins import ALL_INSTANCE_ADMINS, instance_admin_role, instance_admins_group
from zbi_infra.monitoring.component import (
    CLOUDWATCH_EXPORTER_SERVICE_ACCOUNT,
    PROMETHEUS_SERVICE_ACCOUNT,
    SnapshotWatch,
    ZbiMonitoring,
    ZbiMonitoringArgs,
)
from zbi_infra.monitoring.snapshot_freshness import cloudwatch_read_policy
from zbi_infra.node import SnapshotSource, ZcashNode, ZcashNodeArgs
from zbi_infra.node.history_scaling import HistorySnapshots
from zbi_infra.priorities import priority_classes
from zbi_infra.reconciler_access import reconciler_policy
from zbi_infra.recovery import newest_snapshots, primary_short_name
from zbi_infra.snapshots import EBS_CSI_DRIVER, INSTANCE_TAG, STACK_TAG, policy_target_tags, volume_tags
from zbi_infra.storage import ebs_storage_class, ebs_volume_snapshot_class
from zbi_infra.system_nodes import system_placement
from zbi_infra.tls import ZbiCertificateAuthority
from zbi_infra.vpc import ZbiVpc, ZbiVpcArgs
from zbi_infra.zones import lookup_zones, select_zones

SNAPSHOT_CLASS = "zbi-ebs"
# The in-tree AWS cloud provider of EKS makes these an NLB (TCP passthrough: TLS ends at the light-wallet pod).
AWS_NLB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
    "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled": "true",
}


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
        """The operator, and per reconciled stack (all on this cluster) an IRSA role that may only read AWS, and
        cluster-admin in this cluster: it converges what lives in Kubernetes; AWS changes are the deploy workflow's."""
        assert self.cluster is not None and self._config.cluster is not None
        stacks = dict(reconciled) or {self._stack: self._config}
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        roles: dict[str, pulumi.Output[str]] = {}
        for stack, config in sorted(stacks.items()):
            assert config.platform is not None and config.cluster is not None
            regions = sorted({config.platform.region, *([(config.backup or BackupConfig()).dr_region]
                                                       if config.role is StackRole.PRIMARY else [])})  # fmt: skip

            def policy_for(account_id: str, r: list[str] = regions) -> str:
                return reconciler_policy(
                    regions=r, account_id=account_id, backend=control.backend, secrets_provider=control.secrets_provider
                )

            policy = account.apply(policy_for)
            role = self.cluster.workload_role(
                f"{self._stack}-{stack}-reconciler", f"{STACKS_NAMESPACE}:{reconciler_service_account(stack)}", policy
            )
            roles[stack] = role.arn
            # Every reconciled stack runs on this cluster (reconciled_stack_configs refuses others).
            entry = aws.eks.AccessEntry(
                f"{stack}-reconciler-access",
                cluster_name=self._config.cluster.name,
                principal_arn=role.arn,
                opts=pulumi.ResourceOptions(parent=self, provider=self._aws_provider),
            )
            aws.eks.AccessPolicyAssociation(
                f"{stack}-reconciler-cluster-admin",
                cluster_name=self._config.cluster.name,
                principal_arn=entry.principal_arn,
                policy_arn=ACCESS_POLICIES["cluster-admin"],
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                opts=pulumi.ResourceOptions(parent=self, provider=self._aws_provider),
            )
        return ZbiControlPlane(
            f"{self._stack}-control-plane",
            ZbiControlPlaneArgs(config=control, role_arns=roles, placement=system_placement(self._config.cluster)),
            opts=pulumi.ResourceOptions(parent=self, providers={"kubernetes": self._kubernetes}),
        )

    # ---- options -----------------------------------------------------------------------------------------------

    def _moved(self, **options: object) -> pulumi.ResourceOptions:
        """A direct child that used to sit at the top of the stack program: its alias keeps its old URN."""
        return pulumi.ResourceOptions(
            parent=self,
            aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)],
            **options,  # type: ignore[arg-type]
        )

    # ---- monitoring --------------------------------------------------------------------------------------------

    def _probe_key_sha256(self) -> pulumi.Output[str] | None:
        return self._probe_key.apply(key_hash) if self._probe_key is not None else None

    def _monitoring(self) -> ZbiMonitoring:
        config = self._config
        monitoring = config.monitoring
        if config.role is StackRole.LOCAL:
            unset = {k: v for k, v in LOCAL_DEFAULTS.items() if k not in monitoring.model_fields_set}
            monitoring = monitoring.model_copy(update=unset)
        instances = dict(self._instance_configs)
        remote_write_role = self._remote_write_role(monitoring)
        webhooks = {
            severity: url
            for severity, url in (
                ("critical", config.alert_webhook_critical),
                ("warning", config.alert_webhook_warning),
            )
            if url
        }
        return ZbiMonitoring(
            f"{self._stack}-monitoring",
            ZbiMonitoringArgs(
                config=monitoring,
                instances=instances,
                public_endpoints=[
                    node.grpc_endpoint
                    for name, node in self.nodes.items()
                    if node.grpc_endpoint is not None and instances[name].endpoints.public_grpc
                ],
                storage_class_name=(config.local or LocalConfig()).storage_class
                if config.role is StackRole.LOCAL
                else None,
                webhooks=webhooks,
                region=config.platform.region if config.platform else None,
                remote_write_role_arn=remote_write_role,
                snapshots=self._snapshot_watch(),
                gateways=frozenset(name for name in self._access if name in self.nodes),
                json_rpc_endpoints=[
                    node.gateway_endpoint for node in self.nodes.values() if node.gateway_endpoint is not None
                ],
                probe_key=self._probe_key,
                control_plane=self.control_plane is not None,
                placement=system_placement(config.cluster),
            ),
            opts=pulumi.ResourceOptions(parent=self, providers={"kubernetes": self._kubernetes}),
        )

    def _snapshot_watch(self) -> SnapshotWatch | None:
        """The stack's DLM policy, watched through CloudWatch by an exporter on a read-only IRSA role."""
        if self.backups is None or self.cluster is None:
            return None
        role = self.cluster.workload_role(
            f"{self._stack}-cloudwatch-exporter", CLOUDWATCH_EXPORTER_SERVICE_ACCOUNT, cloudwatch_read_policy()
        )
        interval = (self._config.backup or BackupConfig()).interval_hours
        return SnapshotWatch(policy_id=self.backups.policy_id, interval_hours=interval, role_arn=role.arn)

    def _remote_write_role(self, monitoring: MonitoringConfig) -> pulumi.Output[str] | None:
        """Prometheus's IRSA role: remote write to the one Amazon Managed Prometheus workspace configured."""
        workspace = monitoring.amp_workspace()
        if workspace is None or self.cluster is None:
            return None
        region, workspace_id = workspace
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        policy = account.apply(
            lambda account_id: json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["aps:RemoteWrite"],
                            "Resource": f"arn:aws:aps:{region}:{account_id}:workspace/{workspace_id}",
                        }
                    ],
                }
            )
        )
        return self.cluster.workload_role(
            f"{self._stack}-prometheus-remote-write", PROMETHEUS_SERVICE_ACCOUNT, policy
        ).arn

    def _instance_ca(self, instance: str) -> ZbiCertificateAuthority:
        """The instance's own CA (no longer one per stack: docs/security.md, "TLS")."""
        ca = ZbiCertificateAuthority(
            f"{instance}-tls-ca",
            common_name=f"zBI {self._stack}/{instance} CA",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ca_cert_pems[instance] = ca.ca_cert_pem
        return ca

    # ---- local -------------------------------------------------------------------------------------------------

    def _local(self) -> None:
        local = self._config.local or LocalConfig()
        # The kubeconfig of the machine running Pulumi (~/.kube/config or $KUBECONFIG), at the chosen context.
        provider = k8s.Provider(
            "local", context=local.kubeconfig_context, enable_server_side_apply=True, opts=self._moved()
        )
        self._kubernetes = provider
        self._instance_configs = dict(self._config.instances)
        priorities = priority_classes(self._stack, pulumi.ResourceOptions(parent=self, provider=provider))
        for name, instance in self._config.instances.items():
            ca = self._instance_ca(name)
            self.nodes[name] = ZcashNode(
                name,
                ZcashNodeArgs(
                    config=instance,
                    storage_class_name=local.storage_class,
                    certificate_authority=ca,
                    priority_class_names=priorities,
                    access=self._access.get(name),
                    probe_key_sha256=self._probe_key_sha256(),
                ),
                opts=self._moved(providers={"kubernetes": provider}),
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
        assert self.cluster is not None
        cluster = self.cluster
        self._instance_configs = dict(instances)
        priorities = priority_classes(self._stack, pulumi.ResourceOptions(parent=self, provider=cluster.provider))
        assert self.vpc is not None and self._config.cluster is not None
        # With an ACM front door, the AWS Load Balancer Controller that gives it ALPN h2 (docs/public-tls.md).
        controller = load_balancer_controller.for_acm_front_doors(
            self._stack, [public_tls.uses_acm(i) for i in instances.values()], cluster, self._config.cluster,
            region=self.region, vpc_id=self.vpc.vpc_id, opts=pulumi.ResourceOptions(parent=self),
        )  # fmt: skip
        instances, exports = history_exports(
            self._stack,
            instances,
            primary=role is FailoverRole.PRIMARY,
            region=self.region,
            oidc_provider_arn=cluster.eks_cluster.oidc_provider_arn,
            oidc_provider_url=cluster.eks_cluster.oidc_provider_url,
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        for name, instance in instances.items():
            ca = self._instance_ca(name)
            storage_class = ebs_storage_class(
                f"zbi-{name}-chain",
                storage=instance.node.storage,
                kms_key_arn=cluster.ebs_kms_key_arn,
                tags=volume_tags(stack=self._stack, instance=name),
                opts=self._moved(provider=cluster.provider),
            )
            # Light-wallet caches: gp3's baseline (no provisioned IOPS, valid at any size), not snapshotted.
            cache_class = ebs_storage_class(
                f"zbi-{name}-cache",
                storage=None,
                kms_key_arn=cluster.ebs_kms_key_arn,
                tags={INSTANCE_TAG: name, STACK_TAG: self._stack},
                opts=self._moved(provider=cluster.provider),
            )
            node = ZcashNode(
                name,
                ZcashNodeArgs(
                    config=instance,
                    storage_class_name=storage_class.metadata.apply(lambda m: str(m.name)),
                    cache_storage_class_name=cache_class.metadata.apply(lambda m: str(m.name)),
                    certificate_authority=ca,
                    load_balancer_annotations=AWS_NLB_ANNOTATIONS,
                    front_door_annotations=public_tls.front_door_annotations(
                        name, instance, AWS_NLB_ANNOTATIONS, self._config.dns, opts=self._moved(provider=provider)
                    ),
                    load_balancer_controller=controller,
                    restore_from=restore.get(name),
                    history_snapshots=HistorySnapshots(
                        EBS_CSI_DRIVER,
                        self._zone_names,
                        {INSTANCE_TAG: name, STACK_TAG: self._stack},
                        after=(cluster.snapshot_controller,),
                    ),
                    priority_class_names=priorities,
                    access=self._access.get(name),
                    probe_key_sha256=self._probe_key_sha256(),
                    history_export=exports.get(name),
                ),
                opts=self._moved(providers={"kubernetes": cluster.provider}),
            )
            self.nodes[name] = node
            instance_admin_role(name, node.namespace, pulumi.ResourceOptions(parent=node, provider=cluster.provider))
            assert self._config.cluster is not None
            for index, principal in enumerate(instance.admins):
                grant_instance_admin(self._config.cluster.name, name, index, principal, node, provider)
            dns = self._config.dns
            if dns and instance.endpoints.public_grpc and node.grpc_load_balancer_hostname is not None:
                for hostname in instance.endpoints.hostnames:
                    failover_record(
                        f"{name}-{hostname}",
                        dns=dns,
                        hostname=hostname,
                        target=node.grpc_load_balancer_hostname,
                        role=role,
                        opts=pulumi.ResourceOptions(parent=node, provider=provider),
                    )

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


def grant_instance_admin(
    cluster_name: str, instance: str, index: int, principal: str, node: ZcashNode, provider: aws.Provider
) -> None:
    """Instance administrators get EKS access as members of their instance's group, and no access policy: the
    zbi-instance-admin Role in their namespace is all they hold (zbi_infra/instance_admins.py)."""
    opts = pulumi.ResourceOptions(parent=node, provider=provider)
    aws.eks.AccessEntry(
        f"{instance}-admin-{index}",
        cluster_name=cluster_name,
        principal_arn=principal,
        kubernetes_groups=[ALL_INSTANCE_ADMINS, instance_admins_group(instance)],
        opts=opts,
    )
