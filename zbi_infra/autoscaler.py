"""The Cluster Autoscaler for a ZbiCluster: its chart, its values, and the least privilege it needs.

Cluster Autoscaler rather than Karpenter: zBI's node groups are one per zone precisely so that a pending pod whose
EBS volume lives in a zone gets a node in that zone. The autoscaler scales exactly those groups (it simulates each
group's template, zone included) and balances similar groups across zones; Karpenter provisions outside node groups
and would bypass the per-zone layout, the launch templates (IMDSv2, encrypted roots) and the node role zBI sets up.
"""

from __future__ import annotations

import json

# kubernetes/autoscaler, tag cluster-autoscaler-chart-9.59.0 and the newest release of each Kubernetes minor
# (tests/fixtures/upstream/autoscaler/cluster-autoscaler.json). The autoscaler's minor must match the cluster's.
CHART = "cluster-autoscaler"
CHART_VERSION = "9.59.0"
CHART_REPOSITORY = "https://kubernetes.github.io/autoscaler"
IMAGE_TAGS = {"1.32": "v1.32.7", "1.33": "v1.33.6", "1.34": "v1.34.5", "1.35": "v1.35.2", "1.36": "v1.36.1"}
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "cluster-autoscaler"
# A node that runs a full node is never drained to save money: its pod would spend minutes to hours reopening state.
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
# kubernetes/autoscaler cluster-autoscaler/cloudprovider/aws/README.md, "Full Cluster Autoscaler Features Policy":
# reads on everything; writes only on the ASGs EKS tags as this cluster's (k8s.io/cluster-autoscaler/<cluster>).
READ_ACTIONS = [
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
    "eks:DescribeNodegroup",
]
WRITE_ACTIONS = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]


def ownership_tag(cluster_name: str) -> str:
    """The tag EKS managed node groups put on their Auto Scaling groups (value "owned")."""
    return f"k8s.io/cluster-autoscaler/{cluster_name}"


def autoscaler_policy(cluster_name: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": READ_ACTIONS, "Resource": "*"},
                {
                    "Effect": "Allow",
                    "Action": WRITE_ACTIONS,
                    "Resource": "*",
                    "Condition": {"StringEquals": {f"aws:ResourceTag/{ownership_tag(cluster_name)}": "owned"}},
                },
            ],
        }
    )


def autoscaler_values(*, cluster_name: str, region: str, kubernetes_version: str, role_arn: str) -> dict:
    return {
        "autoDiscovery": {"clusterName": cluster_name},
        "awsRegion": region,
        "cloudProvider": "aws",
        "image": {"tag": IMAGE_TAGS[kubernetes_version]},
        "rbac": {
            "serviceAccount": {
                "create": True,
                "name": SERVICE_ACCOUNT,
                "annotations": {"eks.amazonaws.com/role-arn": role_arn},
            }
        },
        "extraArgs": {
            # One group per zone: keep them the same size, so a zone loss removes a fifth of capacity, not all of it.
            "balance-similar-node-groups": True,
            "balancing-ignore-label_1": "topology.ebs.csi.aws.com/zone",
            "balancing-ignore-label_2": "zbi.io/node-group",
            "expander": "least-waste",
            # zBI pods mount an emptyDir for /tmp; that must not pin a node.
            "skip-nodes-with-local-storage": False,
        },
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534},
        "containerSecurityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
