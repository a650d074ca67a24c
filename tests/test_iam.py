"""Least privilege where AWS recommends it: confused-deputy conditions, the VPC CNI on IRSA, SSM by choice."""

from __future__ import annotations

import fnmatch
import json

from tests.conftest import PlanStack
from tests.test_policy import PRIMARY_OUTPUTS
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


# ---- every permission policy, not only trust policies -----------------------------------------------------------

PERMISSION_POLICIES = {"aws:iam/rolePolicy:RolePolicy": "policy", "aws:iam/policy:Policy": "policy"}
GRANT_ACTIONS = ("kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant")


def statements(plan: Plan) -> list[tuple[str, dict]]:
    found = []
    for type_, key in PERMISSION_POLICIES.items():
        for resource in plan.of_type(type_):
            document = resource.inputs[key]
            document = json.loads(document) if isinstance(document, str) else document
            listed = document["Statement"]
            found += [(resource.name, s) for s in (listed if isinstance(listed, list) else [listed])]
    return found


def allows(statement: dict, action: str) -> bool:
    """Does an Allow statement's Action (IAM wildcards, case-insensitive) cover `action`?"""
    if statement.get("Effect") != "Allow":
        return False
    if "NotAction" in statement:
        return True  # everything but a list: assume it covers the action (a NotAction list is never this narrow)
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions)


def test_kms_grants_are_only_for_aws_resources_in_every_permission_policy(plan_stack: PlanStack) -> None:
    """A role that may CreateGrant on a key without `kms:GrantIsForAWSResource` can hand the key's use to any
    principal: the DLM and EBS CSI roles need grants only for the AWS services that attach volumes and copy
    snapshots (AWS KMS developer guide, "kms:GrantIsForAWSResource")."""
    plans = [plan_stack("dev"), plan_stack("dr", stack_outputs=PRIMARY_OUTPUTS)]
    granting: set[str] = set()
    for plan in plans:
        for name, statement in statements(plan):
            if any(allows(statement, action) for action in GRANT_ACTIONS):
                granting.add(name)
                condition = statement.get("Condition", {})
                assert condition.get("Bool", {}).get("kms:GrantIsForAWSResource") == "true", (name, statement)
    # The check looked at the roles that do need grants.
    assert {"dev-backups-dlm-kms", "zbi-dev-ebs-csi-kms"} <= granting, granting


def test_the_grant_check_catches_a_grant_without_its_condition() -> None:
    unconditioned = {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}
    assert allows(unconditioned, "kms:CreateGrant") and not unconditioned.get("Condition")
    assert allows({"Effect": "Allow", "Action": ["KMS:createGrant"]}, "kms:CreateGrant")
    assert allows({"Effect": "Allow", "NotAction": ["s3:*"]}, "kms:CreateGrant")
    assert not allows({"Effect": "Allow", "Action": ["kms:Decrypt"]}, "kms:CreateGrant")
    assert not allows({"Effect": "Deny", "Action": ["kms:*"]}, "kms:CreateGrant")
