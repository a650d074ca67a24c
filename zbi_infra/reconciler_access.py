"""What the in-cluster reconciler may do in AWS: read, and nothing else.

The operator's workspace runs `pulumi up --refresh` of a zBI stack from Git every few minutes, unreviewed, on nodes it
shares with other pods. It therefore holds no AWS write permission at all: it refreshes every AWS resource the stack
has (so it must read them), and converges what lives in Kubernetes (instances, access files, gateways, monitoring)
through the cluster-admin access entry of its own cluster. An AWS change (a new role, a DNS record, an instance
administrator's access entry, a larger node group) makes its `up` fail with AccessDenied — the StackReconcileFailing
alert — until the reviewed deploy workflow applies it. No IAM write means nothing to boundary: the reconciler cannot
create or change a role, a policy, a trust or a tag, and so cannot make itself more than it is.

`READ_ACTIONS` says, for every AWS resource type and invoke a zBI plan may contain, which actions its refresh needs;
tests/test_reconciler_access.py fails on a type the table does not know, so a new resource cannot silently make the
reconciler insufficient.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

from zbi_infra.iam import POLICY_VERSION

_EC2 = ["ec2:Describe*"]
_IAM_ROLE = ["iam:GetRole", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole"]
_KMS_KEY = ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags"]
_EKS = ["eks:Describe*", "eks:List*"]
# A bucket's refresh reads its existence (HeadBucket: s3:ListBucket) and each bucket-level setting; object reads are
# not among them.
_S3_BUCKET = ["s3:ListBucket", "s3:GetBucket*", "s3:GetEncryptionConfiguration", "s3:GetLifecycleConfiguration",
              "s3:GetReplicationConfiguration", "s3:GetAccelerateConfiguration"]  # fmt: skip
# AWS resource type or invoke token -> the actions Pulumi's refresh (or the invoke) calls.
READ_ACTIONS: dict[str, list[str]] = {
    "aws:ec2/vpc:Vpc": _EC2,
    "aws:ec2/subnet:Subnet": _EC2,
    "aws:ec2/internetGateway:InternetGateway": _EC2,
    "aws:ec2/natGateway:NatGateway": _EC2,
    "aws:ec2/eip:Eip": _EC2,
    "aws:ec2/routeTable:RouteTable": _EC2,
    "aws:ec2/route:Route": _EC2,
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _EC2,
    "aws:ec2/flowLog:FlowLog": _EC2,
    "aws:ec2/launchTemplate:LaunchTemplate": _EC2,
    "aws:ec2/securityGroup:SecurityGroup": _EC2,
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": _EC2,
    "aws:ec2/vpcEndpoint:VpcEndpoint": _EC2,
    "aws:iam/role:Role": _IAM_ROLE,
    "aws:iam/rolePolicy:RolePolicy": ["iam:GetRolePolicy"],
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ["iam:ListAttachedRolePolicies"],
    "aws:kms/key:Key": _KMS_KEY,
    "aws:kms/alias:Alias": ["kms:ListAliases"],
    "aws:kms/replicaKey:ReplicaKey": _KMS_KEY,
    "aws:cloudwatch/logGroup:LogGroup": ["logs:DescribeLogGroups", "logs:ListTagsForResource", "logs:ListTagsLogGroup"],
    "aws:dlm/lifecyclePolicy:LifecyclePolicy": ["dlm:GetLifecyclePolicy", "dlm:ListTagsForResource"],
    "aws:eks/addon:Addon": _EKS,
    "aws:eks/accessEntry:AccessEntry": _EKS,
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": _EKS,
    "aws:route53/record:Record": ["route53:GetHostedZone", "route53:ListResourceRecordSets", "route53:GetChange"],
    "aws:route53/healthCheck:HealthCheck": ["route53:GetHealthCheck", "route53:ListTagsForResource"],
    # The history export (zbi_infra/history_export_aws.py): its buckets and their settings, catalog and workgroup.
    "aws:s3/bucket:Bucket": _S3_BUCKET,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ["s3:GetBucketPublicAccessBlock"],
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ["s3:GetBucketOwnershipControls"],
    "aws:s3/bucketVersioning:BucketVersioning": ["s3:GetBucketVersioning"],
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": [
        "s3:GetEncryptionConfiguration"
    ],
    "aws:s3/bucketPolicy:BucketPolicy": ["s3:GetBucketPolicy"],
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": ["s3:GetLifecycleConfiguration"],
    "aws:glue/catalogDatabase:CatalogDatabase": ["glue:GetDatabase", "glue:GetTags"],
    "aws:glue/catalogTable:CatalogTable": ["glue:GetTable", "glue:GetPartitionIndexes"],
    "aws:athena/workgroup:Workgroup": ["athena:GetWorkGroup", "athena:ListTagsForResource"],
    # pulumi-eks's components: their providers run in the plugin, refreshing what they created the same way.
    "eks:index:Cluster": [*_EKS, *_EC2, *_IAM_ROLE, "iam:GetOpenIDConnectProvider"],
    "eks:index:ManagedNodeGroup": [*_EKS, *_EC2],
    "aws:index/getAvailabilityZones:getAvailabilityZones": ["ec2:DescribeAvailabilityZones"],
    "aws:index/getCallerIdentity:getCallerIdentity": ["sts:GetCallerIdentity"],
    "aws:index/getRegion:getRegion": [],
    "aws:index/getPartition:getPartition": [],
    "aws:ebs/getSnapshotIds:getSnapshotIds": ["ec2:DescribeSnapshots"],
}
# Read, but not this: an instance's user data and console are where secrets of other tools end up.
DENIED_READS = ["ec2:DescribeInstanceAttribute", "ec2:GetConsoleOutput", "ec2:GetConsoleScreenshot",
                "ec2:GetPasswordData", "ec2:GetLaunchTemplateData"]  # fmt: skip


def read_actions() -> list[str]:
    return sorted({action for actions in READ_ACTIONS.values() for action in actions})


def reconciler_policy(
    *,
    regions: list[str],
    account_id: str,
    backend: str | None = None,
    secrets_provider: str | None = None,
) -> str:
    """The reconciler's whole AWS access: the reads its refresh needs (in the stack's regions; IAM, Route 53 and
    STS are global), and, for a self-managed backend, its state objects and the secrets key — by name."""
    statements: list[dict] = [
        {
            "Sid": "RefreshRegional",
            "Effect": "Allow",
            "Action": [a for a in read_actions() if a.split(":")[0] not in ("iam", "route53", "sts")],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": sorted(regions)}},
        },
        {
            "Sid": "RefreshGlobal",
            "Effect": "Allow",
            "Action": [a for a in read_actions() if a.split(":")[0] in ("iam", "route53", "sts")],
            "Resource": "*",
        },
        {"Sid": "NoUserData", "Effect": "Deny", "Action": DENIED_READS, "Resource": "*"},
    ]
    if backend and backend.startswith("s3://"):
        statements += state_backend_statements(backend)
    if secrets_provider:
        statements.append(secrets_key_statement(secrets_provider, account_id=account_id, default_region=regions[0]))
    return json.dumps({"Version": POLICY_VERSION, "Statement": statements})


def state_backend_statements(backend: str) -> list[dict]:
    """The state directory (`<prefix>/.pulumi/`) of an S3 backend: list it, read and write its objects."""
    url = urlparse(backend)
    bucket, prefix = url.netloc, url.path.strip("/")
    under = f"{prefix}/.pulumi" if prefix else ".pulumi"
    return [
        {
            "Sid": "StateList",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": [under, f"{under}/*"]}},
        },
        {
            "Sid": "StateObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": f"arn:aws:s3:::{bucket}/{under}/*",
        },
    ]


def secrets_key_statement(provider: str, *, account_id: str, default_region: str) -> dict:
    """Encrypt/decrypt with the stack's secrets key (awskms://KEY?region=R; KEY an ARN, a key id or alias/NAME)."""
    url = urlparse(provider)
    key = (url.netloc + url.path).strip("/")
    region = parse_qs(url.query).get("region", [default_region])[0]
    actions = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
    if key.startswith("arn:"):
        return {"Sid": "SecretsKey", "Effect": "Allow", "Action": actions, "Resource": key}
    if key.startswith("alias/"):
        # Called by alias: the key behind it, whichever it is, and no other.
        return {
            "Sid": "SecretsKey",
            "Effect": "Allow",
            "Action": actions,
            "Resource": f"arn:aws:kms:{region}:{account_id}:key/*",
            "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": key}},
        }
    return {"Sid": "SecretsKey", "Effect": "Allow", "Action": actions,
            "Resource": f"arn:aws:kms:{region}:{account_id}:key/{key}"}  # fmt: skip
