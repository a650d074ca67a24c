"""The AWS Load Balancer Controller, installed on EKS when an instance terminates public TLS at its NLB (ACM).

Why: gRPC clients that insist on ALPN `h2` (grpc-go since 1.67) need the NLB's TLS listener to offer it, and only
this controller sets a listener's ALPN policy (`aws-load-balancer-alpn-policy`); the EKS cloud provider's NLBs
ignore the annotation. The controller takes only the Services that name it (`aws-load-balancer-type: external`):
every other LoadBalancer Service (P2P, instances without ACM) stays with the cloud provider, exactly as before.

Chart and policy: aws/eks-charts `stable/aws-load-balancer-controller` 3.5.0 (controller v3.5.0) and the controller's
`docs/install/iam_policy.json` at tag v3.5.0, both vendored under tests/fixtures/upstream/aws-load-balancer-controller/.
The policy below is upstream's with the deviations in DEVIATIONS (tests/test_load_balancer_controller.py proves the
rest is upstream's, grant for grant).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra.system_nodes import system_placement

if TYPE_CHECKING:
    from zbi_infra.cluster import ZbiCluster
    from zbi_infra.config.platform import ClusterConfig

CHART = "aws-load-balancer-controller"
CHART_VERSION = "3.5.0"
CHART_REPOSITORY = "https://aws.github.io/eks-charts"
IMAGE_TAG = "v3.5.0"
NAMESPACE = "kube-system"
RELEASE = "aws-load-balancer-controller"
SERVICE_ACCOUNT = "aws-load-balancer-controller"
# The tag the controller puts on everything it creates; upstream's policy gates writes on it.
CLUSTER_TAG = "elbv2.k8s.aws/cluster"

# Each way zBI's policy differs from upstream's, and why (docs/public-tls.md repeats them).
DEVIATIONS = {
    "no tag edits on existing security groups": (
        "upstream lets the controller add and remove tags on security groups already carrying the cluster tag; "
        "zBI's escalation check refuses tag edits on existing resources next to tag-gated grants. The controller "
        "edits an existing group's tags only when its desired tags change, and zBI sets none that change (no "
        "defaultTags, no additional-resource-tags): the tags it writes when it creates a group stay right"
    ),
    "no elasticloadbalancing:ModifyIpPools": (
        "IPAM pools of Application Load Balancers (its only resource is loadbalancer/app/*); zBI makes NLBs, and "
        "parliament's IAM database does not know the action"
    ),
    "security-group ingress only in the cluster's VPC": (
        "upstream allows AuthorizeSecurityGroupIngress/RevokeSecurityGroupIngress on every security group of the "
        "account (to open the nodes' groups to the NLB); zBI conditions it on ec2:Vpc, the cluster's VPC"
    ),
}

_TAGGED = {"Null": {f"aws:ResourceTag/{CLUSTER_TAG}": "false"}}
_REQUESTS_TAG = {"Null": {f"aws:RequestTag/{CLUSTER_TAG}": "false"}}
_LB_RESOURCES = [
    "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
    "arn:aws:elasticloadbalancing:*:*:loadbalancer/net/*/*",
    "arn:aws:elasticloadbalancing:*:*:loadbalancer/app/*/*",
]
_SG = "arn:aws:ec2:*:*:security-group/*"
DESCRIBE = [
    *(f"ec2:{a}" for a in (
        "DescribeAccountAttributes", "DescribeAddresses", "DescribeAvailabilityZones", "DescribeInternetGateways",
        "DescribeVpcs", "DescribeVpcPeeringConnections", "DescribeSubnets", "DescribeSecurityGroups",
        "DescribeInstances", "DescribeNetworkInterfaces", "DescribeTags", "GetCoipPoolUsage", "DescribeCoipPools",
        "GetSecurityGroupsForVpc", "DescribeIpamPools", "DescribeRouteTables")),
    *(f"elasticloadbalancing:{a}" for a in (
        "DescribeLoadBalancers", "DescribeLoadBalancerAttributes", "DescribeListeners",
        "DescribeListenerCertificates", "DescribeSSLPolicies", "DescribeRules", "DescribeTargetGroups",
        "DescribeTargetGroupAttributes", "DescribeTargetHealth", "DescribeTags", "DescribeTrustStores",
        "DescribeListenerAttributes", "DescribeCapacityReservation")),
]  # fmt: skip
# Certificates, WAF and Shield: the Ingress/ALB features the controller looks up on every reconcile.
INTEGRATIONS = [
    "cognito-idp:DescribeUserPoolClient", "acm:ListCertificates", "acm:DescribeCertificate",
    "iam:ListServerCertificates", "iam:GetServerCertificate", "waf-regional:GetWebACL",
    "waf-regional:GetWebACLForResource", "waf-regional:AssociateWebACL", "waf-regional:DisassociateWebACL",
    "wafv2:GetWebACL", "wafv2:GetWebACLForResource", "wafv2:AssociateWebACL", "wafv2:DisassociateWebACL",
    "shield:GetSubscriptionState", "shield:DescribeProtection", "shield:CreateProtection", "shield:DeleteProtection",
]  # fmt: skip
MODIFY_OWN = [
    *(f"elasticloadbalancing:{a}" for a in (
        "ModifyLoadBalancerAttributes", "SetIpAddressType", "SetSecurityGroups", "SetSubnets", "DeleteLoadBalancer",
        "ModifyTargetGroup", "ModifyTargetGroupAttributes", "DeleteTargetGroup", "ModifyListenerAttributes",
        "ModifyCapacityReservation")),
]  # fmt: skip


def controller_policy(vpc_id: str) -> str:
    """The controller's IRSA policy (upstream's, less DEVIATIONS)."""
    statements: list[dict[str, Any]] = [
        {"Sid": "LoadBalancingServiceRole", "Action": ["iam:CreateServiceLinkedRole"], "Resource": "*",
         "Condition": {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}}},
        {"Sid": "Describe", "Action": DESCRIBE, "Resource": "*"},
        {"Sid": "Integrations", "Action": INTEGRATIONS, "Resource": "*"},
        {"Sid": "OpenNodeGroupsInThisVpc", "Action": ["ec2:AuthorizeSecurityGroupIngress",
                                                      "ec2:RevokeSecurityGroupIngress"], "Resource": "*",
         "Condition": {"ArnLike": {"ec2:Vpc": f"arn:aws:ec2:*:*:vpc/{vpc_id}"}}},
        {"Sid": "CreateSecurityGroup", "Action": ["ec2:CreateSecurityGroup"], "Resource": "*"},
        {"Sid": "TagSecurityGroupOnCreate", "Action": ["ec2:CreateTags"], "Resource": _SG,
         "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}, **_REQUESTS_TAG}},
        {"Sid": "OwnSecurityGroups", "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
                                                "ec2:DeleteSecurityGroup"], "Resource": "*", "Condition": _TAGGED},
        {"Sid": "CreateTagged", "Action": ["elasticloadbalancing:CreateLoadBalancer",
                                           "elasticloadbalancing:CreateTargetGroup"], "Resource": "*",
         "Condition": _REQUESTS_TAG},
        {"Sid": "ListenersAndRules", "Action": [f"elasticloadbalancing:{a}" for a in (
            "CreateListener", "DeleteListener", "CreateRule", "DeleteRule")], "Resource": "*"},
        {"Sid": "RetagOwn", "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
         "Resource": _LB_RESOURCES, "Condition": {"Null": {f"aws:RequestTag/{CLUSTER_TAG}": "true",
                                                           f"aws:ResourceTag/{CLUSTER_TAG}": "false"}}},
        {"Sid": "TagListenersAndRules", "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
         "Resource": [f"arn:aws:elasticloadbalancing:*:*:{kind}/{lb}/*/*/*" for kind in ("listener", "listener-rule")
                      for lb in ("net", "app")]},
        {"Sid": "ModifyOwn", "Action": MODIFY_OWN, "Resource": "*", "Condition": _TAGGED},
        {"Sid": "TagOnCreate", "Action": ["elasticloadbalancing:AddTags"], "Resource": _LB_RESOURCES,
         "Condition": {"StringEquals": {"elasticloadbalancing:CreateAction": ["CreateTargetGroup",
                                                                              "CreateLoadBalancer"]},
                       **_REQUESTS_TAG}},
        {"Sid": "Targets", "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
         "Resource": "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*"},
        {"Sid": "Listeners", "Action": [f"elasticloadbalancing:{a}" for a in (
            "SetWebAcl", "ModifyListener", "AddListenerCertificates", "RemoveListenerCertificates", "ModifyRule",
            "SetRulePriorities")], "Resource": "*"},
    ]  # fmt: skip
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **s} for s in statements]})


def controller_values(
    *, cluster_name: str, region: str, vpc_id: str, role_arn: str, placement: dict[str, Any]
) -> dict[str, Any]:
    """Chart values (keys of the chart's values.yaml). Region and VPC are given: the nodes' IMDS hop limit of 1
    keeps pods from reading them from instance metadata."""
    selector = {"app.kubernetes.io/name": CHART, "app.kubernetes.io/instance": RELEASE}
    return {
        "clusterName": cluster_name,
        "region": region,
        "vpcId": vpc_id,
        "image": {"tag": IMAGE_TAG},
        "serviceAccount": {
            "create": True,
            "name": SERVICE_ACCOUNT,
            "annotations": {"eks.amazonaws.com/role-arn": role_arn},
        },
        # Two replicas (leader election: one works, one waits), one eviction at a time, in different zones.
        "replicaCount": 2,
        "podDisruptionBudget": {"maxUnavailable": 1},
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector},
            }
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
        "securityContext": {
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        # Off: with it on, the controller's webhook claims every new LoadBalancer Service (P2P too) and, with its
        # failurePolicy Fail, no such Service can be created while the controller is down. zBI's ACM Services name
        # the controller themselves (aws-load-balancer-type: external).
        "enableServiceMutatorWebhook": False,
        **placement,
    }


def install(
    name: str,
    cluster: ZbiCluster,
    *,
    cluster_name: str,
    region: str,
    vpc_id: pulumi.Output[str],
    placement: dict[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    """The controller's IRSA role and chart, on the system node group when there is one."""
    role = cluster.workload_role(f"{name}-load-balancer-controller", f"{NAMESPACE}:{SERVICE_ACCOUNT}",
                                 vpc_id.apply(controller_policy))  # fmt: skip
    return k8s.helm.v3.Release(
        f"{name}-{RELEASE}",
        name=RELEASE,
        chart=CHART,
        version=CHART_VERSION,
        namespace=NAMESPACE,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
        values=pulumi.Output.all(role.arn, vpc_id).apply(
            lambda v: controller_values(
                cluster_name=cluster_name, region=region, vpc_id=v[1], role_arn=v[0], placement=placement
            )
        ),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(provider=cluster.provider)),
    )


def for_acm_front_doors(
    name: str,
    uses_acm: list[bool],
    cluster: ZbiCluster,
    config: ClusterConfig,
    *,
    region: str,
    vpc_id: pulumi.Output[str],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release | None:
    """The controller when any instance (one flag each) terminates ACM TLS at its NLB; else nothing."""
    if not any(uses_acm):
        return None
    placement = system_placement(config)
    return install(
        name, cluster, cluster_name=config.name, region=region, vpc_id=vpc_id, placement=placement, opts=opts
    )
