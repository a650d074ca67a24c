"""IAM policy documents that several components need, written once."""

from __future__ import annotations

import json
from collections.abc import Sequence

POLICY_VERSION = "2012-10-17"
KMS_DATA_KEY_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]


def service_trust_policy(service: str) -> str:
    """A role that an AWS service (ec2.amazonaws.com, dlm.amazonaws.com, …) may assume."""
    return json.dumps(
        {
            "Version": POLICY_VERSION,
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
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
