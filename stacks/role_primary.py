"""The primary platform: VPC across the region's zones, EKS cluster, and the Zcash instances on it."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from zbi_infra.cluster import ZbiCluster, ZbiClusterArgs
from zbi_infra.config import StackConfig
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.instances import AWS_NLB_ANNOTATIONS, build_instances
from zbi_infra.node import ZcashNode
from zbi_infra.storage import ebs_storage_class, ebs_tags
from zbi_infra.tls import ZbiCertificateAuthority
from zbi_infra.vpc import ZbiVpc, ZbiVpcArgs
from zbi_infra.zones import lookup_zones, select_zones


def platform_tags(config: StackConfig) -> dict[str, str]:
    assert config.platform is not None
    return {
        "zbi.io/stack": pulumi.get_stack(),
        "zbi.io/managed-by": "pulumi",
        **config.tags,
        **config.platform.tags,
    }


def build_platform(config: StackConfig) -> tuple[aws.Provider, ZbiVpc, ZbiCluster]:
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
    provider = aws.Provider(
        f"aws-{platform.region}", region=platform.region, default_tags=aws.ProviderDefaultTagsArgs(tags=tags)
    )
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
        ),
        opts=pulumi.ResourceOptions(providers={"aws": provider}),
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


def build_zcash(config: StackConfig, provider: aws.Provider, cluster: ZbiCluster) -> None:
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
        return storage_class.metadata.apply(lambda m: m.name)

    nodes = build_instances(
        config.instances,
        provider=cluster.provider,
        certificate_authority=ca,
        storage_class_for=storage_class_for,
        load_balancer_annotations=AWS_NLB_ANNOTATIONS,
    )
    assert config.cluster is not None
    for name, instance in config.instances.items():
        for index, principal in enumerate(instance.admins):
            grant_instance_admin(config.cluster.name, name, index, principal, nodes[name], provider)
    pulumi.export("caCertPem", ca.ca_cert_pem)
    pulumi.export("instances", {name: {"namespace": n.namespace, "grpc": n.grpc_endpoint} for name, n in nodes.items()})


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


def build(config: StackConfig) -> None:
    provider, _, cluster = build_platform(config)
    build_zcash(config, provider, cluster)
