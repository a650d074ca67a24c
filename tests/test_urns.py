"""Moving resources (into the ZbiPlatform component, or anywhere) never replaces a deployed one: every URN a
deployment of the previous layout holds is still a resource's URN or one of its aliases."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, PlanStack
from zbi_infra.plan.engine import Plan

PRIMARY_OUTPUTS = {
    "dev": {"disasterRecovery": {"drKmsKeyArn": "arn:aws:kms:us-west-2:123456789012:key/x", "instances": ["testnet"]}}
}
# Resources this work removed on purpose (least privilege, issue 7): nothing may match them.
REMOVED = {
    "urn:pulumi:dev::zbi::zbi:cluster:ZbiCluster$aws:iam/rolePolicyAttachment:RolePolicyAttachment::zbi-dev-node-role-cni",
    "urn:pulumi:dev::zbi::zbi:cluster:ZbiCluster$aws:iam/rolePolicyAttachment:RolePolicyAttachment::zbi-dev-node-role-ssm",
    # Instance administrators lose EKS Edit for a Role of their own (issue 19).
    *(
        f"urn:pulumi:{stack}::zbi::zbi:node:ZcashNode$aws:eks/accessPolicyAssociation:AccessPolicyAssociation::"
        "testnet-admin-0-edit"
        for stack in ("dev", "dr")
    ),
    # The stack's one CA gives way to a CA per instance (issue 19): deleting it is the point, not a move. Server
    # certificates keep their URNs and are re-issued under their instance's CA (docs/security.md, "TLS").
    *(
        f"urn:pulumi:{stack}::zbi::zbi:tls:ZbiCertificateAuthority{child}::{stack}-ca{suffix}"
        for stack in ("dev", "dr", "local")
        for child, suffix in (
            ("", ""),
            ("$tls:index/privateKey:PrivateKey", "-key"),
            ("$tls:index/selfSignedCert:SelfSignedCert", "-cert"),
        )
    ),
}


def known_urns(plan: Plan) -> set[str]:
    return {urn for resource in plan.resources for urn in (resource.urn, *resource.aliases)}


@pytest.mark.parametrize(
    ("stack", "golden", "merge", "outputs"),
    [
        ("dev", "dev.txt", None, None),
        ("local", "local.txt", None, None),
        ("dr", "dr-activated.txt", {"zbi:dr": {"activate": True}}, PRIMARY_OUTPUTS),
    ],
)
def test_every_previous_urn_is_kept_or_aliased(
    plan_stack: PlanStack, stack: str, golden: str, merge: dict | None, outputs: dict | None
) -> None:
    previous = set((ROOT / "tests" / "fixtures" / "urns" / golden).read_text().split())
    plan = plan_stack(stack, merge=merge, stack_outputs=outputs)
    lost = previous - known_urns(plan) - REMOVED
    assert not lost, sorted(lost)


def test_an_alias_is_needed_and_inherited(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    vpc = next(r for r in plan.resources if r.name == "zbi-dev-net-vpc")
    # Moved under the platform component ...
    assert (
        vpc.urn == "urn:pulumi:dev::zbi::zbi:platform:ZbiPlatform$zbi:network:ZbiVpc$aws:ec2/vpc:Vpc::zbi-dev-net-vpc"
    )
    # ... and still known by its old URN, through its parent's alias.
    assert "urn:pulumi:dev::zbi::zbi:network:ZbiVpc$aws:ec2/vpc:Vpc::zbi-dev-net-vpc" in vpc.aliases
    # The platform itself is new: nothing to alias.
    assert plan.named("dev").aliases == []
