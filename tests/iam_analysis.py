"""Every IAM policy a plan renders, and the checks that look for privilege escalation in them.

Two analysers made for the job (Duo Labs' parliament for policy correctness, Salesforce's cloudsplaining for
escalation and risky actions) and our own check of the known escalation combinations, on actions expanded through
policy_sentry's IAM database (what `iam:Create*` or `ec2:*` really covers)."""

from __future__ import annotations

import fnmatch
import json
import re
import warnings
from dataclasses import dataclass
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # parliament imports pkg_resources
    import parliament
from cloudsplaining.scan.policy_document import PolicyDocument
from policy_sentry.querying.actions import get_action_data
from policy_sentry.querying.all import get_all_actions

from zbi_infra.plan.engine import Plan

ALL_ACTIONS = sorted(get_all_actions(lowercase=False))


@dataclass(frozen=True)
class RenderedPolicy:
    where: str  # resource name and input
    kind: str  # "permissions" or "trust"
    document: dict[str, Any]


def rendered_policies(plan: Plan) -> list[RenderedPolicy]:
    found = []
    for resource in plan.resources:
        for key, kind in (("policy", "permissions"), ("assumeRolePolicy", "trust")):
            text = resource.inputs.get(key)
            if resource.type.startswith("aws:iam/") and isinstance(text, str) and text:
                found.append(RenderedPolicy(f"{resource.name}.{key}", kind, json.loads(text)))
    return found


def listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def expand(patterns: list[str]) -> set[str]:
    """IAM action patterns (service:Verb*) as the real actions they grant, lower-cased."""
    wanted = [p.lower() for p in patterns]
    return {a.lower() for a in ALL_ACTIONS if any(fnmatch.fnmatchcase(a.lower(), p) for p in wanted)}


def allowed(document: dict[str, Any]) -> list[tuple[dict[str, Any], set[str]]]:
    return [(s, expand(listed(s["Action"]))) for s in document["Statement"] if s["Effect"] == "Allow"]


def access_level(action: str) -> str:
    service, name = action.split(":")
    for entry in get_action_data(service, name).get(service, []):
        if entry["action"].lower() == action:
            return str(entry["access_level"])
    return "Unknown"


# Creating or changing identities, their policies or their trust: each is a way to give yourself more.
IDENTITY_WRITES = {
    "iam:createrole", "iam:updateassumerolepolicy", "iam:putrolepolicy", "iam:attachrolepolicy",
    "iam:createpolicy", "iam:createpolicyversion", "iam:setdefaultpolicyversion", "iam:createuser",
    "iam:putuserpolicy", "iam:attachuserpolicy", "iam:createaccesskey", "iam:createloginprofile",
    "iam:updateloginprofile", "iam:putgrouppolicy", "iam:attachgrouppolicy", "iam:addusertogroup",
    "iam:deleterolepermissionsboundary", "iam:putrolepermissionsboundary", "iam:deleteuserpermissionsboundary",
    "iam:putuserpermissionsboundary", "iam:createopenidconnectprovider", "iam:createsamlprovider",
}  # fmt: skip
# Actions that start compute with a role passed to it: with iam:PassRole, the compute acts as that role.
COMPUTE_WITH_ROLE = {
    "ec2:runinstances", "ec2:requestspotinstances", "ec2:createlaunchtemplate", "ec2:createlaunchtemplateversion",
    "lambda:createfunction", "lambda:updatefunctionconfiguration", "ecs:runtask", "ecs:registertaskdefinition",
    "glue:createdevendpoint", "glue:createjob", "cloudformation:createstack", "cloudformation:updatestack",
    "eks:createnodegroup", "eks:createcluster", "autoscaling:createlaunchconfiguration",
    "autoscaling:createautoscalinggroup", "sagemaker:createnotebookinstance", "codebuild:createproject",
    "datapipeline:createpipeline", "ssm:sendcommand", "ssm:startsession",
}  # fmt: skip
TAGGING_PREFIXES = ("tagresource", "createtags", "tagrole", "taguser", "tag", "untag", "deletetags")


def _conditions(statement: dict[str, Any]) -> dict[str, Any]:
    return {k.lower(): v for op in statement.get("Condition", {}).values() for k, v in op.items()}


def _is_tagging(action: str) -> bool:
    return action.split(":")[1].startswith(TAGGING_PREFIXES)


def escalation_findings(document: dict[str, Any]) -> list[str]:
    """The known escalation combinations in one permission policy."""
    findings = []
    grants = allowed(document)
    every = set().union(*(actions for _, actions in grants)) if grants else set()
    for statement, actions in grants:
        conditions = _conditions(statement)
        bounded = "iam:permissionsboundary" in conditions
        if unbounded := sorted(a for a in actions & IDENTITY_WRITES if not bounded):
            findings.append(f"identity or policy writes without a permissions boundary: {unbounded[:6]}")
        if "kms:creategrant" in actions and str(conditions.get("kms:grantisforawsresource")).lower() != "true":
            findings.append("kms:CreateGrant without kms:GrantIsForAWSResource: grants of the key to anyone")
        tagging = sorted(a for a in actions if _is_tagging(a))
        # Tagging only while creating (ec2:CreateAction) cannot relabel an existing resource.
        if tagging and "ec2:createaction" not in conditions:
            gated = [
                s
                for s, _ in grants
                if any(k.startswith(("aws:resourcetag/", "iam:resourcetag/")) for k in _conditions(s))
            ]
            if gated:
                findings.append(f"tagging of existing resources {tagging[:4]} next to tag-conditioned grants")
    if "iam:passrole" in every and (compute := sorted(every & COMPUTE_WITH_ROLE)):
        findings.append(f"iam:PassRole with compute creation {compute[:4]}: the compute runs as the passed role")
    return findings


def cloudsplaining_findings(document: dict[str, Any]) -> dict[str, list[str]]:
    policy = PolicyDocument(document)
    found = {
        "privilege escalation": [str(e) for e in policy.allows_privilege_escalation],
        "permissions management without constraints": list(policy.permissions_management_without_constraints),
        "credentials exposure": list(policy.credentials_exposure),
        "service wildcard": list(policy.service_wildcard),
    }
    return {kind: items for kind, items in found.items() if items}


# parliament's findings that are wrong for reads no AWS API can scope (its own docs: RESOURCE_STAR is low severity).
PARLIAMENT_ACCEPTED = {"RESOURCE_STAR"}


def condition_keys(action: str) -> set[str]:
    service, name = action.split(":")
    entries = get_action_data(service, name).get(service, [])
    return {key.lower() for e in entries if e["action"].lower() == action.lower() for key in e["condition_keys"]}


def parliament_findings(document: dict[str, Any]) -> list[str]:
    """parliament's findings, except a condition key its bundled IAM database predates and policy_sentry's newer
    one lists for that action (kms:ResourceAliases, 2021)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysed = parliament.analyze_policy_string(json.dumps(document))
    found = []
    for finding in analysed.findings:
        if finding.issue in PARLIAMENT_ACCEPTED:
            continue
        if finding.issue == "UNKNOWN_CONDITION_FOR_ACTION":
            match = re.fullmatch(r"Unknown condition (\S+) for action (\S+)", str(finding.detail))
            if match and match[1].lower() in condition_keys(match[2]):
                continue
        found.append(f"{finding.issue}: {finding.detail}")
    return found


def trust_findings(document: dict[str, Any]) -> list[str]:
    """A role's trust: a named service (with confused-deputy conditions where AWS asks for them) or one exact OIDC
    provider and service account, never a wildcard principal or issuer."""
    findings = []
    for statement in document["Statement"]:
        principal = statement.get("Principal", {})
        if principal == "*" or "AWS" in principal:
            findings.append(f"trusts a principal by account or anyone: {principal}")
        if federated := principal.get("Federated") if isinstance(principal, dict) else None:
            if "*" in federated or "?" in federated:
                findings.append(f"federated principal with a wildcard: {federated}")
            equals = statement.get("Condition", {}).get("StringEquals", {})
            issuer = federated.split(":oidc-provider/", 1)[-1]
            if set(equals) != {f"{issuer}:sub", f"{issuer}:aud"} or "StringLike" in statement.get("Condition", {}):
                findings.append(f"web identity not pinned to one service account of {issuer}: {statement}")
    return findings
