"""Least privilege where AWS recommends it: confused-deputy conditions, the VPC CNI on IRSA, SSM by choice."""

from __future__ import annotations

import json

from tests.conftest import PlanStack
from zbi_infra.plan.engine import Plan
from zbi_infra.plan.mocks import ACCOUNT_ID


def policy_attachments(plan: Plan, role_resource: str) -> set[str]:
    role = plan.named(role_resource)
    return {
        r.inputs["policyArn"]
        for r in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r.inputs["role"] == role.id
    }


def trust(plan: Plan, role_resource: str) -> dict:
    (statement,) = json.loads(plan.named(role_resource).inputs["assumeRolePolicy"])["Statement"]
    return statement


def test_service_roles_trust_only_this_accounts_resources(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    dlm = trust(plan, "dev-backups-dlm-role")
    assert dlm["Principal"] == {"Service": "dlm.amazonaws.com"}
    assert dlm["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
        "ArnLike": {"aws:SourceArn": f"arn:aws:dlm:us-east-1:{ACCOUNT_ID}:policy/*"},
    }
    flow_logs = trust(plan, "zbi-dev-net-flow-logs-role")
    assert flow_logs["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert flow_logs["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
        "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:us-east-1:{ACCOUNT_ID}:vpc-flow-log/*"},
    }


def test_the_vpc_cni_runs_on_its_own_irsa_role_before_any_node(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    (cluster,) = plan.of_type("eks:index:Cluster")
    assert cluster.inputs["useDefaultVpcCni"] is True  # pulumi-eks leaves the CNI to the managed add-on
    addon = plan.named("zbi-dev-vpc-cni")
    role = plan.named("zbi-dev-vpc-cni-role")
    assert addon.inputs["addonName"] == "vpc-cni" and addon.inputs["serviceAccountRoleArn"] == role.inputs.get(
        "arn", f"arn:aws:iam::{ACCOUNT_ID}:role/{role.id}"
    )
    statement = trust(plan, "zbi-dev-vpc-cni-role")
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    conditions = statement["Condition"]["StringEquals"]
    assert sorted(conditions.values()) == ["sts.amazonaws.com", "system:serviceaccount:kube-system:aws-node"]
    assert all(key.startswith("oidc.eks.us-east-1.amazonaws.com/id/") for key in conditions)
    assert policy_attachments(plan, "zbi-dev-vpc-cni-role") == {"arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"}
    groups = plan.of_type("eks:index:ManagedNodeGroup")
    assert groups and all(addon.urn in group.depends_on for group in groups)


def test_nodes_carry_no_cni_and_no_ssm_permissions_by_default(plan_stack: PlanStack) -> None:
    default = policy_attachments(plan_stack("dev"), "zbi-dev-node-role")
    assert default == {
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
    }
    with_ssm = policy_attachments(
        plan_stack("dev", merge={"zbi:cluster": {"nodeSsmAccess": True}}), "zbi-dev-node-role"
    )
    assert with_ssm == default | {"arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"}


def test_the_ebs_csi_driver_trusts_only_its_controller_service_account(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    conditions = trust(plan, "zbi-dev-ebs-csi-role")["Condition"]["StringEquals"]
    assert "system:serviceaccount:kube-system:ebs-csi-controller-sa" in conditions.values()
    assert policy_attachments(plan, "zbi-dev-ebs-csi-role") == {
        "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
    }
