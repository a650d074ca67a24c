"""The primary platform: VPC across the region's zones, EKS cluster, chain-data backups, and the Zcash instances."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from zbi_infra.backup import ZbiBackups, ZbiBackupsArgs, snapshot_target_tags
from zbi_infra.cluster import ZbiCluster, ZbiClusterArgs
from zbi_infra.config import StackConfig
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.config.recovery import BackupConfig
from zbi_infra.dns import FailoverRole, failover_record
from zbi_infra.instances import AWS_NLB_ANNOTATIONS, build_instances
from zbi_infra.node import SnapshotSource, ZcashNode
from zbi_infra.storage import ebs_storage_class, ebs_tags, ebs_volume_snapshot_class
from zbi_infra.tls import ZbiCertificateAuthority
from zbi_infra.vpc import ZbiVpc, ZbiVpcArgs
from zbi_infra.zones import lookup_zones, select_zones

SNAPSHOT_CLASS = "zbi-ebs"


def platform_tags(config: StackConfig) -> dict[str, str]:
    assert config.platform is not None
    return {
        "zbi.io/stack": pulumi.get_stack(),
        "zbi.io/managed-by": "pulumi",
        **config.tags,
        **config.platform.tags,
    }


def regional_provider(region: str, tags: dict[str, str]) -> aws.Provider:
    """An explicit provider per region (no default provider): every AWS resource says where it lives."""
    return aws.Provider(f"aws-{region}", region=region, default_tags=aws.ProviderDefaultTagsArgs(tags=tags))


def build_platform(
    config: StackConfig, *, restore_kms_key_arns: list[pulumi.Input[str]] | None = None
) -> tuple[aws.Provider, ZbiVpc, ZbiCluster]:
    platform, cluster_config = config.platform, config.cluster
    assert platform is not None and cluster_config is not None
    # Looked up (an invoke, not a resource) and checked before anything is registered.
    zones = select_zones(
        lookup_zones(platform.region),
        region=platform.region,
        count=platform.availability_zone_count,
        zone_ids=platform.zone_ids,
        config_key="zbi:platform",
    )
    tags = platform_tags(config)
    provider = regional_provider(platform.region, tags)
    vpc = ZbiVpc(
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
        opts=pulumi.ResourceOptions(providers={"aws": provider}),
    )
    cluster = ZbiCluster(
        cluster_config.name,
        ZbiClusterArgs(
            config=cluster_config,
            vpc_id=vpc.vpc_id,
            zones=zones,
            private_subnet_ids_by_zone=vpc.private_subnet_ids_by_zone,
            public_subnet_ids=vpc.public_subnet_ids,
            tags=tags,
            restore_kms_key_arns=restore_kms_key_arns or [],
        ),
        opts=pulumi.ResourceOptions(providers={"aws": provider}),
    )
    ebs_volume_snapshot_class(
        SNAPSHOT_CLASS,
        tags={"zbi.io/stack": pulumi.get_stack()},
        opts=pulumi.ResourceOptions(provider=cluster.provider, depends_on=[cluster.snapshot_controller]),
    )
    pulumi.export("region", platform.region)
    pulumi.export("zoneIds", vpc.zone_ids)
    pulumi.export("availabilityZones", vpc.availability_zones)
    pulumi.export("vpcId", vpc.vpc_id)
    pulumi.export("privateSubnetIds", vpc.private_subnet_ids)
    pulumi.export("publicSubnetIds", vpc.public_subnet_ids)
    pulumi.export("clusterName", cluster.cluster_name)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("oidcProviderArn", cluster.oidc_provider_arn)
    pulumi.export("nodeRoleArn", cluster.node_role_arn)
    return provider, vpc, cluster


def build_zcash(
    config: StackConfig,
    provider: aws.Provider,
    cluster: ZbiCluster,
    *,
    restore: dict[str, SnapshotSource] | None = None,
    failover_role: FailoverRole = FailoverRole.PRIMARY,
) -> dict[str, ZcashNode]:
    stack = pulumi.get_stack()
    k8s_opts = pulumi.ResourceOptions(provider=cluster.provider)
    ca = ZbiCertificateAuthority(f"{stack}-ca")

    def storage_class_for(name: str, instance: InstanceConfig) -> pulumi.Input[str]:
        storage_class = ebs_storage_class(
            f"zbi-{name}-chain",
            storage=instance.node.storage,
            kms_key_arn=cluster.ebs_kms_key_arn,
            tags=ebs_tags(stack=stack, instance=name),
            opts=k8s_opts,
        )
        return storage_class.metadata.apply(lambda m: str(m.name))

    nodes = build_instances(
        config.instances,
        provider=cluster.provider,
        certificate_authority=ca,
        storage_class_for=storage_class_for,
        load_balancer_annotations=AWS_NLB_ANNOTATIONS,
        restore=restore or {},
    )
    assert config.cluster is not None
    for name, instance in config.instances.items():
        for index, principal in enumerate(instance.admins):
            grant_instance_admin(config.cluster.name, name, index, principal, nodes[name], provider)
        node = nodes[name]
        if config.dns and instance.endpoints.public_grpc and node.grpc_load_balancer_hostname is not None:
            for hostname in instance.endpoints.hostnames:
                failover_record(
                    f"{name}-{hostname}",
                    dns=config.dns,
                    hostname=hostname,
                    target=node.grpc_load_balancer_hostname,
                    role=failover_role,
                    opts=pulumi.ResourceOptions(parent=node, provider=provider),
                )
    pulumi.export("caCertPem", ca.ca_cert_pem)
    pulumi.export("instances", {name: {"namespace": n.namespace, "grpc": n.grpc_endpoint} for name, n in nodes.items()})
    return nodes


def grant_instance_admin(
    cluster_name: str, instance: str, index: int, principal: str, node: ZcashNode, provider: aws.Provider
) -> None:
    """Instance administrators get EKS access to their instance's namespace only."""
    opts = pulumi.ResourceOptions(parent=node, provider=provider)
    entry = aws.eks.AccessEntry(
        f"{instance}-admin-{index}", cluster_name=cluster_name, principal_arn=principal, opts=opts
    )
    aws.eks.AccessPolicyAssociation(
        f"{instance}-admin-{index}-edit",
        cluster_name=cluster_name,
        principal_arn=entry.principal_arn,
        policy_arn="arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy",
        access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="namespace", namespaces=[f"zbi-{instance}"]),
        opts=opts,
    )


def build_backups(config: StackConfig, provider: aws.Provider, cluster: ZbiCluster) -> ZbiBackups | None:
    backup = config.backup or BackupConfig()
    assert config.platform is not None
    if not backup.enabled:
        pulumi.log.warn("zbi:backup.enabled is false: chain data has no snapshots and no copy in another region")
        return None
    stack = pulumi.get_stack()
    tags = platform_tags(config)
    dr_provider = regional_provider(backup.dr_region, tags)
    backups = ZbiBackups(
        f"{stack}-backups",
        ZbiBackupsArgs(
            stack=stack,
            source_kms_key_arn=cluster.ebs_kms_key_arn,
            region=config.platform.region,
            dr_region=backup.dr_region,
            interval_hours=backup.interval_hours,
            retain_count=backup.retain_count,
            dr_retain_days=backup.dr_retain_days,
            tags=tags,
        ),
        dr_provider=dr_provider,
        opts=pulumi.ResourceOptions(providers={"aws": provider}),
    )
    # What the DR stack reads through its StackReference.
    pulumi.export(
        "disasterRecovery",
        {
            "drRegion": backup.dr_region,
            "drKmsKeyArn": backups.dr_kms_key_arn,
            "snapshotTags": snapshot_target_tags(stack),
            "instances": sorted(config.instances),
        },
    )
    return backups


def bootstrap_sources(config: StackConfig) -> dict[str, SnapshotSource]:
    return {
        name: SnapshotSource(
            driver="ebs.csi.aws.com", snapshot_handle=instance.node.bootstrap_snapshot_id, snapshot_class=SNAPSHOT_CLASS
        )
        for name, instance in config.instances.items()
        if instance.node.bootstrap_snapshot_id
    }


def build(config: StackConfig) -> None:
    provider, _, cluster = build_platform(config)
    build_backups(config, provider, cluster)
    build_zcash(config, provider, cluster, restore=bootstrap_sources(config))
