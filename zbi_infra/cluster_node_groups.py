"""A ZbiCluster's nodes: the node role, one launch template per node group and one managed node group per zone.

ZbiCluster (zbi_infra/cluster.py) calls these with itself as `parent`, so every resource keeps its name, type and
place in the tree.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

from zbi_infra.config.platform import NodeGroupConfig
from zbi_infra.iam import service_trust_policy
from zbi_infra.zones import AvailabilityZone

# The node role carries what the kubelet needs and nothing more: the VPC CNI's permissions sit on an IRSA role of the
# aws-node service account instead (EKS best-practices guide, "Networking": "Use IRSA for the CNI").
NODE_ROLE_POLICIES = {
    "worker": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "ecr": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
}
SSM_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"


def node_group_name(cluster: str, group: str, zone: AvailabilityZone) -> str:
    return f"{cluster}-{group}-{zone.zone_id}"


def node_role(name: str, tags: dict[str, str], *, ssm: bool, parent: pulumi.Resource) -> aws.iam.Role:
    child = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        f"{name}-node-role",
        assume_role_policy=service_trust_policy("ec2.amazonaws.com"),
        tags=tags,
        opts=child,
    )
    policies = {**NODE_ROLE_POLICIES, **({"ssm": SSM_POLICY} if ssm else {})}
    for key, arn in policies.items():
        aws.iam.RolePolicyAttachment(f"{name}-node-role-{key}", role=role.name, policy_arn=arn, opts=child)
    return role


def launch_template(
    name: str, group_name: str, group: NodeGroupConfig, hop_limit: int, tags: dict[str, str], *, parent: pulumi.Resource
) -> aws.ec2.LaunchTemplate:
    # No image_id: EKS keeps choosing and bootstrapping the AMI for the node group's amiType.
    root_device = "/dev/xvda" if group.ami_type.value.startswith("AL2023") else "/dev/xvdb"
    return aws.ec2.LaunchTemplate(
        f"{name}-{group_name}-lt",
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_endpoint="enabled",
            http_tokens="required",
            # 1 keeps pods (one hop further) from reading the node role's credentials; pods get AWS access
            # through IRSA. The EBS CSI node plugin falls back to Kubernetes metadata without IMDS.
            http_put_response_hop_limit=hop_limit,
        ),
        block_device_mappings=[
            aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=root_device,
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=group.disk_size_gib,
                    volume_type="gp3",
                    # Encrypted with the account's aws/ebs key: a customer key here would need a key-policy
                    # grant to the Auto Scaling service-linked role before any node could launch.
                    encrypted="true",
                    delete_on_termination="true",
                ),
            )
        ],
        monitoring=aws.ec2.LaunchTemplateMonitoringArgs(enabled=True),
        tag_specifications=[
            aws.ec2.LaunchTemplateTagSpecificationArgs(
                resource_type=kind, tags={**tags, "zbi.io/node-group": group_name}
            )
            for kind in ("instance", "volume")
        ],
        update_default_version=True,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def node_group(
    name: str,
    cluster_name: str,
    group_name: str,
    group: NodeGroupConfig,
    zone: AvailabilityZone,
    private_subnet_ids_by_zone: Mapping[str, pulumi.Input[str]],
    cluster: eks.Cluster,
    role: aws.iam.Role,
    template: aws.ec2.LaunchTemplate,
    tags: dict[str, str],
    vpc_cni: aws.eks.Addon,
    *,
    parent: pulumi.Resource,
) -> eks.ManagedNodeGroup:
    # One group per zone: an EBS volume lives in one zone, so the autoscaler must be able to add a node in
    # exactly the zone where a pending pod's volume is.
    return eks.ManagedNodeGroup(
        f"{name}-{group_name}-{zone.key}",
        cluster=cluster,
        node_group_name=node_group_name(cluster_name, group_name, zone),
        node_role=role,
        subnet_ids=[private_subnet_ids_by_zone[zone.zone_id]],
        ami_type=group.ami_type.value,
        capacity_type=group.capacity_type,
        instance_types=group.instance_types,
        scaling_config=aws.eks.NodeGroupScalingConfigArgs(
            min_size=group.min_size, desired_size=group.desired_size, max_size=group.max_size
        ),
        # The autoscaler owns desiredSize once running; re-applying it on every up would undo its work.
        ignore_scaling_changes=True,
        labels={**group.labels, "zbi.io/node-group": group_name},
        taints=[
            aws.eks.NodeGroupTaintArgs(key=t.key, value=t.value, effect=_taint_effect(t.effect)) for t in group.taints
        ],
        launch_template=aws.eks.NodeGroupLaunchTemplateArgs(id=template.id, version=template.latest_version.apply(str)),
        tags={
            **tags,
            "zbi.io/node-group": group_name,
            "k8s.io/cluster-autoscaler/enabled": "true",
            f"k8s.io/cluster-autoscaler/{cluster_name}": "owned",
            "k8s.io/cluster-autoscaler/node-template/label/topology.ebs.csi.aws.com/zone": zone.name,
        },
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[vpc_cni]),
    )


def _taint_effect(effect: str) -> str:
    """Kubernetes spells taint effects NoSchedule; the EKS API spells them NO_SCHEDULE."""
    return {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}[effect]
