"""A platform's control plane, wired: the operator (ZbiControlPlane) and, per stack it keeps converged, an IRSA role
that may only read AWS plus cluster-admin access to this cluster.

ZbiPlatform (zbi_infra/platform.py) calls `reconciling_control_plane` with itself as `parent`: every resource keeps
its name, type and parent.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from zbi_infra.cluster import ACCESS_POLICIES, ZbiCluster
from zbi_infra.config import StackConfig, StackRole
from zbi_infra.config.control_plane import ControlPlaneConfig
from zbi_infra.config.platform import ClusterConfig
from zbi_infra.config.recovery import BackupConfig
from zbi_infra.control_plane import (
    STACKS_NAMESPACE,
    ZbiControlPlane,
    ZbiControlPlaneArgs,
    reconciler_service_account,
)
from zbi_infra.reconciler_access import reconciler_policy
from zbi_infra.system_nodes import system_placement


def reconciling_control_plane(
    stack: str,
    control: ControlPlaneConfig,
    reconciled: Mapping[str, StackConfig],
    *,
    own_config: StackConfig,
    cluster: ZbiCluster,
    cluster_config: ClusterConfig,
    parent: pulumi.Resource,
    aws_provider: aws.Provider,
    kubernetes: k8s.Provider,
) -> ZbiControlPlane:
    """The operator, and per reconciled stack (all on this cluster; none given: this stack alone) an IRSA role that
    may only read AWS, and cluster-admin in this cluster: it converges what lives in Kubernetes; AWS changes are the
    deploy workflow's."""
    stacks = dict(reconciled) or {stack: own_config}
    account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=parent)).account_id
    roles: dict[str, pulumi.Output[str]] = {}
    for reconciled_stack, config in sorted(stacks.items()):
        assert config.platform is not None and config.cluster is not None
        regions = sorted({config.platform.region, *([(config.backup or BackupConfig()).dr_region]
                                                   if config.role is StackRole.PRIMARY else [])})  # fmt: skip

        def policy_for(account_id: str, r: list[str] = regions) -> str:
            return reconciler_policy(
                regions=r, account_id=account_id, backend=control.backend, secrets_provider=control.secrets_provider
            )

        policy = account.apply(policy_for)
        role = cluster.workload_role(
            f"{stack}-{reconciled_stack}-reconciler",
            f"{STACKS_NAMESPACE}:{reconciler_service_account(reconciled_stack)}",
            policy,
        )
        roles[reconciled_stack] = role.arn
        # Every reconciled stack runs on this cluster (reconciled_stack_configs refuses others).
        entry = aws.eks.AccessEntry(
            f"{reconciled_stack}-reconciler-access",
            cluster_name=cluster_config.name,
            principal_arn=role.arn,
            opts=pulumi.ResourceOptions(parent=parent, provider=aws_provider),
        )
        aws.eks.AccessPolicyAssociation(
            f"{reconciled_stack}-reconciler-cluster-admin",
            cluster_name=cluster_config.name,
            principal_arn=entry.principal_arn,
            policy_arn=ACCESS_POLICIES["cluster-admin"],
            access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
            opts=pulumi.ResourceOptions(parent=parent, provider=aws_provider),
        )
    return ZbiControlPlane(
        f"{stack}-control-plane",
        ZbiControlPlaneArgs(config=control, role_arns=roles, placement=system_placement(cluster_config)),
        opts=pulumi.ResourceOptions(parent=parent, providers={"kubernetes": kubernetes}),
    )
