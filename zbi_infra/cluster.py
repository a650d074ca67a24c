"""ZbiCluster: an EKS cluster with one managed node group per zone, KMS encryption, IRSA and the EBS CSI driver.

Its nodes (node role, launch templates, node groups) are built by zbi_infra/cluster_node_groups.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from zbi_infra import autoscaler, cluster_node_groups
from zbi_infra.config.instance import StorageConfig
from zbi_infra.config.platform import AdminConfig, ClusterConfig
from zbi_infra.iam import irsa_trust_policy, kms_key_use_policy
from zbi_infra.snapshots import STACK_TAG
from zbi_infra.storage import ebs_storage_class
from zbi_infra.system_nodes import system_placement
from zbi_infra.vpc_cni import ADDON_NAME as VPC_CNI_ADDON
from zbi_infra.vpc_cni import vpc_cni_configuration
from zbi_infra.zones import AvailabilityZone

CONTROL_PLANE_LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
ACCESS_POLICIES = {
    "cluster-admin": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
    "admin": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminPolicy",
    "edit": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy",
    "view": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
}
CNI_POLICY = "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"
EBS_CSI_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
DEFAULT_STORAGE_CLASS = "gp3"
EBS_CSI_SERVICE_ACCOUNT = "system:serviceaccount:kube-system:ebs-csi-controller-sa"
VPC_CNI_SERVICE_ACCOUNT = "system:serviceaccount:kube-system:aws-node"


@dataclass(frozen=True)
class ZbiClusterArgs:
    config: ClusterConfig
    vpc_id: pulumi.Input[str]
    zones: list[AvailabilityZone]
    private_subnet_ids_by_zone: Mapping[str, pulumi.Input[str]]
    public_subnet_ids: pulumi.Input[list[str]]
    tags: dict[str, str] = field(default_factory=dict)
    # Keys of snapshots this cluster restores from (DR copies): the EBS CSI driver must decrypt them.
    restore_kms_key_arns: list[pulumi.Input[str]] = field(default_factory=list)
    # The cluster's region (for the Cluster Autoscaler); empty: read from the first zone's name (us-east-1a).
    region: str = ""


def access_entry(admin: AdminConfig) -> eks.AccessEntryArgs:
    scope = (
        aws.eks.AccessPolicyAssociationAccessScopeArgs(type="namespace", namespaces=admin.namespaces)
        if admin.namespaces
        else aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster")
    )
    return eks.AccessEntryArgs(
        principal_arn=admin.principal_arn,
        access_policies={
            admin.policy: eks.AccessPolicyAssociationArgs(policy_arn=ACCESS_POLICIES[admin.policy], access_scope=scope)
        },
    )


class ZbiCluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider
    oidc_provider_arn: pulumi.Output[str]
    oidc_provider_url: pulumi.Output[str]
    node_role_arn: pulumi.Output[str]
    ebs_kms_key_arn: pulumi.Output[str]
    default_storage_class_name: pulumi.Output[str]
    eks_cluster: eks.Cluster
    snapshot_controller: aws.eks.Addon

    def __init__(self, name: str, args: ZbiClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zbi:cluster:ZbiCluster", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)
        tags = {**args.tags, "zbi.io/component": name, "zbi.io/cluster": config.name}
        self._tags = tags

        secrets_key = aws.kms.Key(
            f"{name}-secrets-key",
            description=f"EKS secrets envelope encryption for {config.name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-secrets-key-alias",
            name=f"alias/zbi/{config.name}/eks-secrets",
            target_key_id=secrets_key.id,
            opts=child,
        )
        ebs_key = aws.kms.Key(
            f"{name}-ebs-key",
            description=f"EBS volumes holding chain data in {config.name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            # Losing this key makes every snapshot of chain data unreadable.
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        aws.kms.Alias(
            f"{name}-ebs-key-alias", name=f"alias/zbi/{config.name}/ebs", target_key_id=ebs_key.id, opts=child
        )

        # Created before the cluster so EKS writes into a group with a retention policy instead of creating one
        # that keeps audit logs forever.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{config.name}/cluster",
            retention_in_days=config.log_retention_days,
            tags=tags,
            opts=child,
        )

        cluster = eks.Cluster(
            f"{name}-eks",
            # An explicit name keeps the cluster from being replaced on every up (pulumi-eks #764, #862).
            name=config.name,
            version=config.version,
            vpc_id=args.vpc_id,
            private_subnet_ids=list(args.private_subnet_ids_by_zone.values()),
            public_subnet_ids=args.public_subnet_ids,
            endpoint_private_access=True,
            endpoint_public_access=config.endpoint.public_access,
            public_access_cidrs=config.endpoint.public_access_cidrs if config.endpoint.public_access else None,
            # Changing the authentication mode recreates the cluster (pulumi-eks #1493): chosen once, here.
            authentication_mode=eks.AuthenticationMode.API,
            access_entries={admin.name: access_entry(admin) for admin in config.admins},
            skip_default_node_group=True,
            create_oidc_provider=True,
            encryption_config_key_arn=secrets_key.arn,
            enabled_cluster_log_types=CONTROL_PLANE_LOG_TYPES,
            # pulumi-eks would otherwise create an in-tree gp2 class whose volumes cannot be snapshotted;
            # ZcashNode brings its own gp3 class on the EBS CSI driver.
            storage_classes={},
            # The VPC CNI is the managed add-on below, on its own IRSA role; pulumi-eks would configure it on the
            # node role.
            use_default_vpc_cni=True,
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=True),
            kube_proxy_addon_options=eks.KubeProxyAddonOptionsArgs(enabled=True),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group]),
        )
        oidc_url = cluster.oidc_provider_url.apply(lambda url: url.removeprefix("https://"))
        # Before any node: a node's pods get addresses only once aws-node can call EC2 through this role.
        vpc_cni_role = self._irsa_role(
            f"{name}-vpc-cni-role", cluster, VPC_CNI_SERVICE_ACCOUNT, {f"{name}-vpc-cni-policy": CNI_POLICY}, tags
        )
        vpc_cni = aws.eks.Addon(
            f"{name}-vpc-cni",
            cluster_name=config.name,
            addon_name=VPC_CNI_ADDON,
            service_account_role_arn=vpc_cni_role.arn,
            # NetworkPolicies are enforced only with the agent on (zbi_infra/vpc_cni.py).
            configuration_values=vpc_cni_configuration(),
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster]),
        )

        node_role = cluster_node_groups.node_role(name, tags, ssm=config.node_ssm_access, parent=self)
        node_groups = []
        for group_name, group in config.node_groups.items():
            template = cluster_node_groups.launch_template(
                name, group_name, group, config.imds_hop_limit, tags, parent=self
            )
            for zone in args.zones:
                node_groups.append(
                    cluster_node_groups.node_group(
                        name,
                        config.name,
                        group_name,
                        group,
                        zone,
                        args.private_subnet_ids_by_zone,
                        cluster,
                        node_role,
                        template,
                        tags,
                        vpc_cni,
                        parent=self,
                    )
                )

        ebs_csi_role = self._irsa_role(
            f"{name}-ebs-csi-role", cluster, EBS_CSI_SERVICE_ACCOUNT, {f"{name}-ebs-csi-policy": EBS_CSI_POLICY}, tags
        )
        # Volumes encrypted with our key need the driver to create grants on it (aws-ebs-csi-driver docs/install.md).
        aws.iam.RolePolicy(
            f"{name}-ebs-csi-kms",
            role=ebs_csi_role.id,
            # A key not known yet (a DR stack previewed before its primary exists) is left out rather than
            # written as an empty ARN that IAM would reject.
            policy=pulumi.Output.all(ebs_key.arn, *args.restore_kms_key_arns).apply(
                lambda arns: kms_key_use_policy([a for a in arns if a], grants_for_aws_resources=True)
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        addon_opts = pulumi.ResourceOptions(parent=self, depends_on=[cluster, *node_groups])
        ebs_csi = aws.eks.Addon(
            f"{name}-ebs-csi-driver",
            cluster_name=config.name,
            addon_name="aws-ebs-csi-driver",
            service_account_role_arn=ebs_csi_role.arn,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=tags,
            opts=addon_opts,
        )
        # VolumeSnapshots (fast bootstrap of a new replica, DR) need the snapshot controller.
        self.snapshot_controller = aws.eks.Addon(
            f"{name}-snapshot-controller",
            cluster_name=config.name,
            addon_name="snapshot-controller",
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=tags,
            opts=addon_opts,
        )

        self.kubeconfig = pulumi.Output.secret(cluster.kubeconfig_json)
        self.provider = self_provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=node_groups),
        )
        self.autoscaler = self._autoscaler(name, config, cluster, args, tags, node_groups)
        # EKS 1.30 and later ship no default StorageClass: a claim that names no class (a ZcashNode given none, any
        # chart) would stay Pending. This one is the default: encrypted with the cluster's EBS key, retained.
        self.default_storage_class = ebs_storage_class(
            f"{name}-default-storage-class",
            class_name=DEFAULT_STORAGE_CLASS,
            storage=StorageConfig(iops=3000, throughput_mibps=125),
            kms_key_arn=ebs_key.arn,
            tags={STACK_TAG: pulumi.get_stack(), "zbi.io/cluster": config.name},
            default=True,
            opts=pulumi.ResourceOptions(parent=self, provider=self_provider, depends_on=[ebs_csi]),
        )
        self.default_storage_class_name = pulumi.Output.from_input(DEFAULT_STORAGE_CLASS)
        self.eks_cluster = cluster
        self.cluster_name = pulumi.Output.from_input(config.name)
        self.oidc_provider_arn = cluster.oidc_provider_arn
        self.oidc_provider_url = oidc_url
        self.node_role_arn = node_role.arn
        self.ebs_kms_key_arn = ebs_key.arn
        self.register_outputs(
            {
                "clusterName": self.cluster_name,
                "kubeconfig": self.kubeconfig,
                "oidcProviderArn": self.oidc_provider_arn,
                "oidcProviderUrl": self.oidc_provider_url,
                "nodeRoleArn": self.node_role_arn,
                "ebsKmsKeyArn": self.ebs_kms_key_arn,
                "defaultStorageClassName": self.default_storage_class_name,
            }
        )

    def _autoscaler(
        self,
        name: str,
        config: ClusterConfig,
        cluster: eks.Cluster,
        args: ZbiClusterArgs,
        tags: dict[str, str],
        node_groups: list[eks.ManagedNodeGroup],
    ) -> k8s.helm.v3.Release:
        """The Cluster Autoscaler on an IRSA role that may resize only this cluster's node groups."""
        role = self._irsa_role(
            f"{name}-autoscaler-role",
            cluster,
            f"system:serviceaccount:{autoscaler.NAMESPACE}:{autoscaler.SERVICE_ACCOUNT}",
            {},
            tags,
        )
        aws.iam.RolePolicy(
            f"{name}-autoscaler-policy",
            role=role.id,
            policy=autoscaler.autoscaler_policy(config.name),
            opts=pulumi.ResourceOptions(parent=self),
        )
        region = args.region or (args.zones[0].name.rstrip("abcdefghijklmnopqrstuvwxyz") if args.zones else "")
        return k8s.helm.v3.Release(
            f"{name}-cluster-autoscaler",
            name="cluster-autoscaler",
            chart=autoscaler.CHART,
            version=autoscaler.CHART_VERSION,
            namespace=autoscaler.NAMESPACE,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=autoscaler.CHART_REPOSITORY),
            values=role.arn.apply(
                lambda arn: {
                    **autoscaler.autoscaler_values(
                        cluster_name=config.name, region=region, kubernetes_version=config.version, role_arn=arn
                    ),
                    # Its IRSA role resizes node groups: keep its token off the nodes tenants run on.
                    **system_placement(config),
                }
            ),
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=node_groups),
        )

    def workload_role(self, name: str, service_account: str, policy: pulumi.Input[str]) -> aws.iam.Role:
        """An IRSA role for `namespace:name` service account `service_account` of this cluster, with an inline
        policy: how other components (monitoring's remote write) get AWS access without node credentials."""
        role = self._irsa_role(name, self.eks_cluster, f"system:serviceaccount:{service_account}", {}, self._tags)
        aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=policy, opts=pulumi.ResourceOptions(parent=self))
        return role

    def _irsa_role(
        self, name: str, cluster: eks.Cluster, service_account: str, policies: dict[str, str], tags: dict[str, str]
    ) -> aws.iam.Role:
        """A role for one service account of this cluster, with AWS managed policies attached (by resource name)."""
        child = pulumi.ResourceOptions(parent=self)
        trust = pulumi.Output.all(cluster.oidc_provider_arn, cluster.oidc_provider_url).apply(
            lambda v: irsa_trust_policy(v[0], v[1], service_account)
        )
        role = aws.iam.Role(name, assume_role_policy=trust, tags=tags, opts=child)
        for attachment, arn in policies.items():
            aws.iam.RolePolicyAttachment(attachment, role=role.name, policy_arn=arn, opts=child)
        return role
