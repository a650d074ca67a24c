"""Every IAM policy of the rendered plans (dev, dr activated, and dev with the control plane, Managed Prometheus and
DNS) through parliament, cloudsplaining and our own check of the known privilege-escalation combinations; and the
checks themselves shown to catch escalating policies, including the reconciler policy zBI used to render."""

from __future__ import annotations

import json

import pytest

from tests.conftest import PlanStack
from tests.iam_analysis import (
    RenderedPolicy,
    access_level,
    allowed,
    cloudsplaining_findings,
    escalation_findings,
    parliament_findings,
    rendered_policies,
    trust_findings,
)
from zbi_infra.plan.engine import Plan

WORKSPACE_IMAGE = "pulumi/pulumi-python:3.200.0-nonroot@sha256:" + "0" * 64
CONTROL = {
    "repository": "https://github.com/zbi-example/zbi",
    "workspaceImage": WORKSPACE_IMAGE,
    "backend": "s3://zbi-state/zbi",
    "secretsProvider": "awskms://alias/zbi-state?region=us-east-1",
}
AMP = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-0123abcd-4567-89ef-0123-456789abcdef/api/v1/remote_write"
DNS = {"hostedZoneId": "Z0123456789ABCDEFGHIJ"}
DR_KEY = "arn:aws:kms:us-west-2:123456789012:key/dr-key"
PRIMARY_OUTPUTS = {
    "dev": {"disasterRecovery": {"drKmsKeyArn": DR_KEY, "drRegion": "us-west-2", "instances": ["testnet"]}}
}


@pytest.fixture(scope="module")
def plans(plan_stack: PlanStack) -> dict[str, Plan]:
    return {
        "dev": plan_stack("dev"),
        "dr": plan_stack("dr", merge={"zbi:dr": {"activate": True}, "zbi:dns": DNS}, stack_outputs=PRIMARY_OUTPUTS),
        "full": plan_stack(
            "dev",
            merge={
                "zbi:controlPlane": CONTROL,
                "zbi:monitoring": {"remoteWriteUrl": AMP},
                "zbi:dns": DNS,
                # ACM at the NLB brings the AWS Load Balancer Controller and its role.
                "zbi:instances": {"testnet": {"endpoints": {"publicTls": {"provider": "acm"}}}},
            },
        ),
    }


def every_policy(plans: dict[str, Plan]) -> list[tuple[str, RenderedPolicy]]:
    found = [(name, policy) for name, plan in plans.items() for policy in rendered_policies(plan)]
    assert {p.where for _, p in found} >= {
        "dev-dev-reconciler-policy.policy",
        "dev-prometheus-remote-write-policy.policy",
        "dev-load-balancer-controller-policy.policy",
    }
    return found


def test_no_rendered_permission_policy_escalates(plans: dict[str, Plan]) -> None:
    problems = {
        f"{stack}: {policy.where}": found
        for stack, policy in every_policy(plans)
        if policy.kind == "permissions"
        and (
            found := escalation_findings(policy.document)
            + [f"{k}: {v}" for k, v in cloudsplaining_findings(policy.document).items()]
        )
    }
    assert problems == {}


def test_parliament_finds_nothing_wrong_in_any_rendered_policy(plans: dict[str, Plan]) -> None:
    # Unknown actions, condition keys an action does not support (a condition that silently never applies),
    # resources of the wrong type: every permission policy's conditions are checked, not only trust policies'.
    problems = {
        f"{stack}: {policy.where}": found
        for stack, policy in every_policy(plans)
        if policy.kind == "permissions" and (found := parliament_findings(policy.document))
    }
    assert problems == {}


def test_every_role_trusts_one_service_or_one_service_account_of_one_cluster(plans: dict[str, Plan]) -> None:
    problems = {
        f"{stack}: {policy.where}": found
        for stack, policy in every_policy(plans)
        if policy.kind == "trust" and (found := trust_findings(policy.document))
    }
    assert problems == {}


def test_the_reconciler_may_only_read(plans: dict[str, Plan]) -> None:
    """The in-cluster reconciler runs unreviewed code from Git every few minutes: no AWS write at all, so nothing
    it runs can make a role, a policy, a trust or a tag (S3 state objects and the state key excepted)."""
    document = json.loads(plans["full"].named("dev-dev-reconciler-policy").inputs["policy"])
    levels = {
        action: access_level(action)
        for statement, actions in allowed(document)
        if statement["Sid"].startswith("Refresh")
        for action in actions
    }
    assert levels and set(levels.values()) <= {"Read", "List"}, {
        a: lv for a, lv in levels.items() if lv not in ("Read", "List")
    }
    others = {s["Sid"]: s for s, _ in allowed(document) if not s["Sid"].startswith("Refresh")}
    assert set(others) == {"StateList", "StateObjects", "SecretsKey"}
    assert others["StateObjects"]["Resource"] == "arn:aws:s3:::zbi-state/zbi/.pulumi/*"
    assert others["SecretsKey"]["Condition"] == {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/zbi-state"}}


# --- the checks catch what they are for ------------------------------------------------------------------------

# The reconciler policy zBI rendered before this fix (control_plane.py at f976b68), cut to its escalating parts.
OLD_RECONCILER = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "TagOnCreate", "Effect": "Allow", "Action": ["ec2:CreateTags", "kms:TagResource"], "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestTag/zbi.io/stack": "dev"}}},
        {"Sid": "ChangeTagged", "Effect": "Allow", "Action": ["ec2:*", "kms:*"], "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceTag/zbi.io/stack": "dev"}}},
        {"Sid": "Roles", "Effect": "Allow",
         "Action": ["iam:CreateRole", "iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy", "iam:AttachRolePolicy",
                    "iam:PassRole"],
         "Resource": ["arn:aws:iam::123456789012:role/zbi-dev-*"]},
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (OLD_RECONCILER, "without a permissions boundary"),
        (OLD_RECONCILER, "tagging of existing resources"),
        (OLD_RECONCILER, "iam:PassRole with compute creation"),
        ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:CreateGrant", "Resource": "*"}]},
         "kms:CreateGrant without kms:GrantIsForAWSResource"),
        ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:Create*", "Resource": "*"}]},
         "without a permissions boundary"),
        ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["iam:PassRole", "lambda:Create*"],
                                                  "Resource": "*"}]}, "iam:PassRole with compute creation"),
    ],
)  # fmt: skip
def test_an_escalating_policy_fails_the_check(document: dict, expected: str) -> None:
    assert any(expected in finding for finding in escalation_findings(document))


def test_a_bounded_tag_on_create_policy_passes_our_check() -> None:
    bounded = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["iam:CreateRole", "iam:PutRolePolicy"], "Resource": "*",
             "Condition": {"StringEquals": {"iam:PermissionsBoundary": "arn:aws:iam::123456789012:policy/zbi-boundary"}}},
            {"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
             "Condition": {"StringEquals": {"ec2:CreateAction": "CreateVolume"}}},
            {"Effect": "Allow", "Action": "ec2:DeleteVolume", "Resource": "*",
             "Condition": {"StringEquals": {"aws:ResourceTag/zbi.io/stack": "dev"}}},
        ],
    }  # fmt: skip
    assert escalation_findings(bounded) == []


def test_the_analysers_flag_an_administrator_policy_and_a_bad_condition() -> None:
    admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]}
    found = cloudsplaining_findings(admin)
    assert "privilege escalation" in found and "service wildcard" in found
    misspelt = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*",
                       "Condition": {"StringEquals": {"kms:GrantIsForAWSResource": "true"}}}],
    }  # fmt: skip
    assert any("UNKNOWN_CONDITION_FOR_ACTION" in f for f in parliament_findings(misspelt))


def test_a_wildcard_oidc_issuer_fails_the_trust_check() -> None:
    wildcard = {
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                       "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.*.amazonaws.com/id/*"},
                       "Condition": {"StringLike": {"oidc.eks.*.amazonaws.com/id/*:sub": "system:serviceaccount:*"}}}]
    }  # fmt: skip
    assert len(trust_findings(wildcard)) == 2
