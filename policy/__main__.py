"""The zBI policy pack: `pulumi preview --policy-pack policy` (from the repository root) enforces zBI's guardrails.

Each policy is a rule of `zbi_infra.policies`, the same function `zbi plan --policy` applies offline. Mandatory:
a violation stops the preview or update.
"""

import sys
from pathlib import Path

# The rules live in the zBI library; a checkout of this repository carries them next to this pack.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

from zbi_infra.policies import GUARDRAILS, Guardrail, Resource


def resource_policy(guardrail: Guardrail) -> ResourceValidationPolicy:
    check = guardrail.check_resource
    assert check is not None

    def validate(args, report_violation) -> None:
        for message in check(Resource(args.resource_type, args.name, args.props, args.urn)):
            report_violation(f"{message}. {guardrail.remediation}")

    return ResourceValidationPolicy(
        name=guardrail.name,
        description=guardrail.description,
        validate=validate,
        remediation_steps=guardrail.remediation,
    )


def stack_policy(guardrail: Guardrail) -> StackValidationPolicy:
    check = guardrail.check_stack
    assert check is not None

    def validate(args, report_violation) -> None:
        resources = [Resource(r.resource_type, r.name, r.props, r.urn) for r in args.resources]
        for urn, message in check(resources):
            report_violation(f"{message}. {guardrail.remediation}", urn)

    return StackValidationPolicy(
        name=guardrail.name,
        description=guardrail.description,
        validate=validate,
        remediation_steps=guardrail.remediation,
    )


PolicyPack(
    name="zbi-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[resource_policy(g) if g.check_resource else stack_policy(g) for g in GUARDRAILS],
)
