"""IAM policy documents that several components need, written once."""

from __future__ import annotations

import json
from collections.abc import Sequence

POLICY_VERSION = "2012-10-17"
KMS_DATA_KEY_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]


def service_trust_policy(service: str, *, source_account: str | None = None, source_arn: str | None = None) -> str:
    """A role that an AWS service (ec2.amazonaws.com, dlm.amazonaws.com, …) may assume.

    With `source_account`/`source_arn`, only on behalf of this account's resources: AWS's confused-deputy guidance
    (IAM user guide, "The confused deputy problem") for services that act for many accounts.
    """
    statement: dict = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    condition: dict = {}
    if source_account:
        condition["StringEquals"] = {"aws:SourceAccount": source_account}
    if source_arn:
        condition["ArnLike"] = {"aws:SourceArn": source_arn}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": POLICY_VERSION, "Statement": [statement]})


def irsa_trust_policy(oidc_provider_arn: str, oidc_provider_url: str, service_account: str) -> str:
    """A role one Kubernetes service account assumes through the cluster's OIDC provider (IRSA)."""
    issuer = oidc_provider_url.removeprefix("https://")
    return json.dumps(
        {
            "Version": POLICY_VERSION,
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": oidc_provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {f"{issuer}:sub": service_account, f"{issuer}:aud": "sts.amazonaws.com"}
                    },
                }
            ],
        }
    )


def kms_key_use_policy(key_arns: Sequence[str], *, grants_for_aws_resources: bool) -> str:
    """Use of the given keys for EBS volumes and snapshots; optionally the grants EBS needs to attach them."""
    statements: list[dict] = []
    if grants_for_aws_resources:
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                "Resource": list(key_arns),
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            }
        )
    statements.append({"Effect": "Allow", "Action": KMS_DATA_KEY_ACTIONS, "Resource": list(key_arns)})
    return json.dumps({"Version": POLICY_VERSION, "Statement": statements})
