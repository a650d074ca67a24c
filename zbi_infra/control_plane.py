"""ZbiControlPlane: the Pulumi Kubernetes Operator in the cluster, keeping zBI stacks converged from Git.

One `Stack` resource per zBI stack: the operator checks out the repository at the branch, runs `pulumi up --refresh`
every `resyncMinutes` in a workspace pod, and never destroys on delete. The workspace runs as a service account of
its own, with an IRSA role (the AWS access that stack's `pulumi up` needs, see `reconciler_policy`) and the
`system:auth-delegator` cluster role the operator requires of workspaces (its docs/migration.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra.config.control_plane import ControlPlaneConfig
from zbi_infra.config.stack import StackConfig, StackRole, load_project_stack
from zbi_infra.errors import ConfigError
from zbi_infra.snapshots import STACK_TAG

OPERATOR_NAMESPACE = "pulumi-kubernetes-operator"
OPERATOR_RELEASE = "pulumi-kubernetes-operator"
STACKS_NAMESPACE = "zbi-control-plane"
# pulumi/pulumi-kubernetes-operator at tag pulumi-kubernetes-operator-2.9.0 (tests/fixtures/upstream/...).
OPERATOR_CHART = ("oci://ghcr.io/pulumi/helm-charts/pulumi-kubernetes-operator", "2.9.0")
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


def operator_selector_labels() -> dict[str, str]:
    """The chart's selector labels of its pods and metrics Service (templates/_helpers.tpl, chart 2.9.0), for the
    release named as the chart."""
    return {"app.kubernetes.io/name": OPERATOR_RELEASE, "app.kubernetes.io/instance": OPERATOR_RELEASE}


def reconciler_service_account(stack: str) -> str:
    return f"{stack}-reconciler"


def qualified_stack(config: ControlPlaneConfig, stack: str) -> str:
    return f"{config.organization}/zbi/{stack}" if config.organization else stack


@dataclass(frozen=True)
class ZbiControlPlaneArgs:
    config: ControlPlaneConfig
    # zBI stack -> the ARN of its reconciler's IRSA role.
    role_arns: Mapping[str, pulumi.Input[str]]


class ZbiControlPlane(pulumi.ComponentResource):
    def __init__(self, name: str, args: ZbiControlPlaneArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zbi:controlPlane:ZbiControlPlane", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)

        def namespace(resource: str, ns: str) -> k8s.core.v1.Namespace:
            return k8s.core.v1.Namespace(
                resource,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=ns,
                    labels={"app.kubernetes.io/part-of": "zbi", "pod-security.kubernetes.io/enforce": "restricted"},
                ),
                opts=child,
            )

        operator_ns = namespace(f"{name}-operator-namespace", OPERATOR_NAMESPACE)
        stacks_ns = namespace(f"{name}-stacks-namespace", STACKS_NAMESPACE)
        operator = k8s.helm.v3.Release(
            f"{name}-operator",
            name=OPERATOR_RELEASE,
            chart=OPERATOR_CHART[0],
            version=OPERATOR_CHART[1],
            namespace=OPERATOR_NAMESPACE,
            values={
                # Plain HTTP metrics, scraped by the monitoring stack: stacks_failing is how a failed reconcile shows.
                "controller": {"metricsSecure": False},
                # Its ServiceMonitor is zBI's (zbi_infra/monitoring/component.py): the chart's needs the CRDs first.
                "serviceMonitor": {"enabled": False},
                "podLabels": {"app.kubernetes.io/part-of": "zbi"},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[operator_ns]),
        )
        in_stacks = pulumi.ResourceOptions(parent=self, depends_on=[stacks_ns])
        for stack, role_arn in sorted(args.role_arns.items()):
            account = reconciler_service_account(stack)
            service_account = k8s.core.v1.ServiceAccount(
                f"{name}-{stack}-reconciler",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=account, namespace=STACKS_NAMESPACE, annotations={ROLE_ANNOTATION: role_arn}
                ),
                opts=in_stacks,
            )
            binding = k8s.rbac.v1.ClusterRoleBinding(
                f"{name}-{stack}-auth-delegator",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{STACKS_NAMESPACE}:{account}:system:auth-delegator"),
                role_ref=k8s.rbac.v1.RoleRefArgs(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="system:auth-delegator"
                ),
                subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=account, namespace=STACKS_NAMESPACE)],
                opts=child,
            )
            k8s.apiextensions.CustomResource(
                f"{name}-{stack}-stack",
                api_version="pulumi.com/v1",
                kind="Stack",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=f"zbi-{stack}", namespace=STACKS_NAMESPACE),
                spec=stack_spec(config, stack),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[operator, service_account, binding]),
            )
        self.register_outputs({})


def stack_spec(config: ControlPlaneConfig, stack: str) -> dict[str, object]:
    """The operator's Stack spec for one zBI stack (validated against the vendored CRD schema in the tests)."""
    spec: dict[str, object] = {
        "stack": qualified_stack(config, stack),
        "projectRepo": config.repository,
        "branch": config.branch,
        "repoDir": config.project_path,
        "refresh": True,
        "destroyOnFinalize": False,
        "continueResyncOnCommitMatch": True,
        "resyncFrequencySeconds": config.resync_minutes * 60,
        "serviceAccountName": reconciler_service_account(stack),
        "workspaceTemplate": {"spec": {"securityProfile": "restricted"}},
    }
    if config.backend and not config.uses_pulumi_cloud():
        spec["backend"] = config.backend
    if config.secrets_provider:
        spec["secretsProvider"] = config.secrets_provider
    if config.uses_pulumi_cloud():
        spec["envRefs"] = {
            "PULUMI_ACCESS_TOKEN": {
                "type": "Secret",
                "secret": {"name": config.credentials_secret, "key": "accessToken"},
            }
        }
    return spec


def reconciler_policy(*, stack: str, cluster_name: str, regions: list[str], account_id: str) -> str:
    """What `pulumi up` of one zBI stack needs, as narrowly as IAM lets it be said: every write limited to the
    stack's regions; EC2, KMS and DLM writes to resources tagged with the stack (or being created with that tag);
    EKS to the stack's cluster; IAM to roles named after the cluster and its OIDC provider. Reads are not
    resource-scoped (most Describe/List calls cannot be)."""
    in_regions = {"StringEquals": {"aws:RequestedRegion": regions}}
    tagged = {"StringEquals": {f"aws:ResourceTag/{STACK_TAG}": stack, "aws:RequestedRegion": regions}}
    tagging = {"StringEquals": {f"aws:RequestTag/{STACK_TAG}": stack, "aws:RequestedRegion": regions}}
    statements = [
        {
            "Sid": "Read",
            "Effect": "Allow",
            "Action": [
                "ec2:Describe*",
                "ec2:Get*",
                "eks:Describe*",
                "eks:List*",
                "iam:Get*",
                "iam:List*",
                "kms:Describe*",
                "kms:Get*",
                "kms:List*",
                "dlm:Get*",
                "logs:Describe*",
                "logs:List*",
                "route53:Get*",
                "route53:List*",
                "ssm:GetParameter",
                "sts:GetCallerIdentity",
                "autoscaling:Describe*",
                "cloudwatch:Describe*",
                "cloudwatch:List*",
            ],
            "Resource": "*",
        },
        {
            "Sid": "CreateTagged",
            "Effect": "Allow",
            "Action": [
                "ec2:Create*",
                "ec2:RunInstances",
                "ec2:AllocateAddress",
                "kms:CreateKey",
                "dlm:CreateLifecyclePolicy",
                "logs:CreateLogGroup",
            ],
            "Resource": "*",
            "Condition": tagging,
        },
        {
            "Sid": "TagOnCreate",
            "Effect": "Allow",
            "Action": ["ec2:CreateTags", "kms:TagResource", "dlm:TagResource", "logs:TagResource", "logs:TagLogGroup"],
            "Resource": "*",
            "Condition": tagging,
        },
        {
            "Sid": "ChangeTagged",
            "Effect": "Allow",
            "Action": ["ec2:*", "kms:*", "dlm:*", "logs:*"],
            "Resource": "*",
            "Condition": tagged,
        },
        {
            "Sid": "Aliases",
            "Effect": "Allow",
            "Action": ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"],
            "Resource": f"arn:aws:kms:*:{account_id}:alias/zbi-*",
            "Condition": in_regions,
        },
        {
            "Sid": "Cluster",
            "Effect": "Allow",
            "Action": "eks:*",
            "Condition": in_regions,
            "Resource": [
                f"arn:aws:eks:*:{account_id}:cluster/{cluster_name}",
                f"arn:aws:eks:*:{account_id}:nodegroup/{cluster_name}/*/*",
                f"arn:aws:eks:*:{account_id}:addon/{cluster_name}/*/*",
                f"arn:aws:eks:*:{account_id}:access-entry/{cluster_name}/*",
                f"arn:aws:eks:*:{account_id}:podidentityassociation/{cluster_name}/*",
            ],
        },
        {
            "Sid": "Roles",
            "Effect": "Allow",
            "Action": [
                "iam:CreateRole",
                "iam:DeleteRole",
                "iam:UpdateRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:TagRole",
                "iam:UntagRole",
                "iam:PutRolePolicy",
                "iam:DeleteRolePolicy",
                "iam:AttachRolePolicy",
                "iam:DetachRolePolicy",
                "iam:PassRole",
                "iam:CreateInstanceProfile",
                "iam:DeleteInstanceProfile",
                "iam:AddRoleToInstanceProfile",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:TagInstanceProfile",
            ],
            "Resource": [
                f"arn:aws:iam::{account_id}:role/{cluster_name}-*",
                f"arn:aws:iam::{account_id}:instance-profile/{cluster_name}-*",
            ],
        },
        {
            "Sid": "OidcProvider",
            "Effect": "Allow",
            "Action": [
                "iam:CreateOpenIDConnectProvider",
                "iam:DeleteOpenIDConnectProvider",
                "iam:TagOpenIDConnectProvider",
                "iam:UpdateOpenIDConnectProviderThumbprint",
                "iam:AddClientIDToOpenIDConnectProvider",
            ],
            "Resource": f"arn:aws:iam::{account_id}:oidc-provider/oidc.eks.*.amazonaws.com/id/*",
        },
        {
            "Sid": "ServiceLinkedRoles",
            "Effect": "Allow",
            "Action": "iam:CreateServiceLinkedRole",
            "Resource": "*",
            "Condition": {
                "StringLike": {
                    "iam:AWSServiceName": [
                        "eks.amazonaws.com",
                        "eks-nodegroup.amazonaws.com",
                        "autoscaling.amazonaws.com",
                        "elasticloadbalancing.amazonaws.com",
                    ]
                }
            },
        },
        {
            "Sid": "Dns",
            "Effect": "Allow",
            "Action": [
                "route53:ChangeResourceRecordSets",
                "route53:CreateHealthCheck",
                "route53:DeleteHealthCheck",
                "route53:UpdateHealthCheck",
                "route53:ChangeTagsForResource",
            ],
            "Resource": ["arn:aws:route53:::hostedzone/*", "arn:aws:route53:::healthcheck/*"],
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def reconciled_stack_configs(config: StackConfig, stack: str, project_root: Path) -> dict[str, StackConfig]:
    """The validated config of every stack `zbi:controlPlane.stacks` names (this one's own when it names none),
    read from the project's stack files before anything is registered."""
    control = config.control_plane
    if control is None or not control.enabled:
        return {}
    found: dict[str, StackConfig] = {}
    problems: list[str] = []
    for name in control.stacks or [stack]:
        if name == stack:
            found[name] = config
            continue
        try:
            other = load_project_stack(
                project_root, name, key="zbi:controlPlane.stacks", missing_fix="list this project's stacks"
            )
        except ConfigError as exc:
            problems += exc.problems
            continue
        if other.role is StackRole.LOCAL:
            problems.append(
                f"zbi:controlPlane.stacks: {name} is a local stack, which the operator cannot reconcile. Fix: remove it"
            )
            continue
        found[name] = other
    if problems:
        raise ConfigError(problems)
    return found
