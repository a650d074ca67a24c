"""A platform's Zcash instances, wired: each instance's CA, storage classes, ZcashNode, administrators and DNS
failover records, and what the instances of one cluster share (priority classes, the AWS Load Balancer Controller
for ACM front doors, the history exports).

ZbiPlatform (zbi_infra/platform.py) calls these with itself as `parent`: every resource keeps the name, type, parent
and alias it had when the component built it inline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from zbi_infra import load_balancer_controller, public_tls
from zbi_infra.access_keys import key_hash
from zbi_infra.cluster import ZbiCluster
from zbi_infra.config.access import AccessFile
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.config.platform import ClusterConfig
from zbi_infra.config.recovery import DnsConfig
from zbi_infra.dns import FailoverRole, failover_record
from zbi_infra.history_export_aws import history_exports
from zbi_infra.instance_admins import ALL_INSTANCE_ADMINS, instance_admin_role, instance_admins_group
from zbi_infra.node import SnapshotSource, ZcashNode, ZcashNodeArgs
from zbi_infra.node.history_scaling import HistorySnapshots
from zbi_infra.priorities import priority_classes
from zbi_infra.snapshots import EBS_CSI_DRIVER, INSTANCE_TAG, STACK_TAG, volume_tags
from zbi_infra.storage import ebs_storage_class
from zbi_infra.tls import ZbiCertificateAuthority

# The in-tree AWS cloud provider of EKS makes these an NLB (TCP passthrough: TLS ends at the light-wallet pod).
AWS_NLB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
    "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled": "true",
}


def moved(parent: pulumi.Resource, **options: object) -> pulumi.ResourceOptions:
    """A direct child of the platform that used to sit at the top of the stack program: its alias keeps its old
    URN."""
    return pulumi.ResourceOptions(
        parent=parent,
        aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)],
        **options,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class InstanceWiring:
    """What every instance of one platform shares, wherever its cluster is."""

    stack: str
    parent: pulumi.Resource
    # Instance -> its access file: those instances get a gateway.
    access: Mapping[str, AccessFile]
    # The monitoring probe's key for the gateways' JSON-RPC; the gateways hold only its hash.
    probe_key: pulumi.Output[str] | None

    def probe_key_sha256(self) -> pulumi.Output[str] | None:
        return self.probe_key.apply(key_hash) if self.probe_key is not None else None

    def certificate_authority(self, instance: str) -> ZbiCertificateAuthority:
        """The instance's own CA (no longer one per stack: docs/security.md, "TLS")."""
        return ZbiCertificateAuthority(
            f"{instance}-tls-ca",
            common_name=f"zBI {self.stack}/{instance} CA",
            opts=pulumi.ResourceOptions(parent=self.parent),
        )


@dataclass
class WiredInstances:
    nodes: dict[str, ZcashNode] = field(default_factory=dict)
    # Instance -> its CA's certificate (zbi_infra/tls.py): what that instance's clients trust, and nothing else.
    ca_cert_pems: dict[str, pulumi.Output[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class AwsPlacement:
    """Where a platform on AWS puts its instances: its EKS cluster, VPC, region and zones, and its DNS zone."""

    cluster: ZbiCluster
    cluster_config: ClusterConfig
    vpc_id: pulumi.Output[str]
    region: str
    zone_names: tuple[str, ...]
    tags: dict[str, str]
    provider: aws.Provider
    dns: DnsConfig | None


def local_instances(
    wiring: InstanceWiring,
    instances: Mapping[str, InstanceConfig],
    *,
    storage_class: str | None,
    provider: k8s.Provider,
) -> WiredInstances:
    """The instances on an existing cluster: the cluster's own storage class, no AWS."""
    wired = WiredInstances()
    priorities = priority_classes(wiring.stack, pulumi.ResourceOptions(parent=wiring.parent, provider=provider))
    for name, instance in instances.items():
        ca = wiring.certificate_authority(name)
        wired.ca_cert_pems[name] = ca.ca_cert_pem
        wired.nodes[name] = ZcashNode(
            name,
            ZcashNodeArgs(
                config=instance,
                storage_class_name=storage_class,
                certificate_authority=ca,
                priority_class_names=priorities,
                access=wiring.access.get(name),
                probe_key_sha256=wiring.probe_key_sha256(),
            ),
            opts=moved(wiring.parent, providers={"kubernetes": provider}),
        )
    return wired


def aws_instances(
    wiring: InstanceWiring,
    placement: AwsPlacement,
    instances: dict[str, InstanceConfig],
    *,
    restore: dict[str, SnapshotSource],
    role: FailoverRole,
) -> WiredInstances:
    """The instances on the platform's EKS cluster: encrypted EBS classes, snapshots, NLBs, EKS access for their
    administrators and, with a DNS zone, failover records of the given role."""
    wired = WiredInstances()
    cluster, provider, parent, stack = placement.cluster, placement.provider, wiring.parent, wiring.stack
    priorities = priority_classes(stack, pulumi.ResourceOptions(parent=parent, provider=cluster.provider))
    # With an ACM front door, the AWS Load Balancer Controller that gives it ALPN h2 (docs/public-tls.md).
    controller = load_balancer_controller.for_acm_front_doors(
        stack, [public_tls.uses_acm(i) for i in instances.values()], cluster, placement.cluster_config,
        region=placement.region, vpc_id=placement.vpc_id, opts=pulumi.ResourceOptions(parent=parent),
    )  # fmt: skip
    instances, exports = history_exports(
        stack,
        instances,
        primary=role is FailoverRole.PRIMARY,
        region=placement.region,
        oidc_provider_arn=cluster.eks_cluster.oidc_provider_arn,
        oidc_provider_url=cluster.eks_cluster.oidc_provider_url,
        tags=placement.tags,
        opts=pulumi.ResourceOptions(parent=parent, provider=provider),
    )
    for name, instance in instances.items():
        ca = wiring.certificate_authority(name)
        wired.ca_cert_pems[name] = ca.ca_cert_pem
        storage_class = ebs_storage_class(
            f"zbi-{name}-chain",
            storage=instance.node.storage,
            kms_key_arn=cluster.ebs_kms_key_arn,
            tags=volume_tags(stack=stack, instance=name),
            opts=moved(parent, provider=cluster.provider),
        )
        # Light-wallet caches: gp3's baseline (no provisioned IOPS, valid at any size), not snapshotted.
        cache_class = ebs_storage_class(
            f"zbi-{name}-cache",
            storage=None,
            kms_key_arn=cluster.ebs_kms_key_arn,
            tags={INSTANCE_TAG: name, STACK_TAG: stack},
            opts=moved(parent, provider=cluster.provider),
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
                    name, instance, AWS_NLB_ANNOTATIONS, placement.dns, opts=moved(parent, provider=provider)
                ),
                load_balancer_controller=controller,
                restore_from=restore.get(name),
                history_snapshots=HistorySnapshots(
                    EBS_CSI_DRIVER,
                    placement.zone_names,
                    {INSTANCE_TAG: name, STACK_TAG: stack},
                    after=(cluster.snapshot_controller,),
                ),
                priority_class_names=priorities,
                access=wiring.access.get(name),
                probe_key_sha256=wiring.probe_key_sha256(),
                history_export=exports.get(name),
            ),
            opts=moved(parent, providers={"kubernetes": cluster.provider}),
        )
        wired.nodes[name] = node
        instance_admin_role(name, node.namespace, pulumi.ResourceOptions(parent=node, provider=cluster.provider))
        for index, principal in enumerate(instance.admins):
            grant_instance_admin(placement.cluster_config.name, name, index, principal, node, provider)
        dns = placement.dns
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
    return wired


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
