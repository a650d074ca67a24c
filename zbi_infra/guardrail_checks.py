"""The checks behind zBI's guardrails: pure functions over resources (type, name, input properties), each returning
what is wrong, one resource at a time or the whole stack at once.

`zbi_infra.policies` names them, says why they exist and how to fix a violation, and applies them. Standard library
only, like the rest of the policy pack's imports.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zbi_infra.vpc_cni import ADDON_NAME, enforces_network_policies

EBS_CSI = "ebs.csi.aws.com"
ZCASH_RPC_PORTS = {8232, 18232}
ACM_CERTIFICATE_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-ssl-cert"
WORKLOAD_TYPES = {
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:batch/v1:Job",
}
EKS_CLUSTER_TYPES = {"eks:index:Cluster", "aws:eks/cluster:Cluster"}
WORLD = {"0.0.0.0/0", "::/0"}


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""


def _get(props: Mapping[str, Any], *path: str, default: Any = None) -> Any:
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return default
        value = value[key]
    return value


# ---- one resource at a time -------------------------------------------------------------------------------------


def chain_storage_encrypted_and_retained(resource: Resource) -> list[str]:
    props, problems = resource.props, []
    if resource.type == "kubernetes:storage.k8s.io/v1:StorageClass" and props.get("provisioner") == EBS_CSI:
        if _get(props, "parameters", "encrypted") != "true":
            problems.append('the EBS StorageClass does not encrypt its volumes (parameters.encrypted is not "true")')
        if props.get("reclaimPolicy", "Delete") != "Retain":
            problems.append("the EBS StorageClass deletes its volumes with their claims (reclaimPolicy is not Retain)")
    deletes_claims = _get(props, "spec", "persistentVolumeClaimRetentionPolicy", "whenDeleted") == "Delete"
    if resource.type == "kubernetes:apps/v1:StatefulSet" and deletes_claims:
        problems.append("the StatefulSet deletes its volume claims when it is deleted")
    if resource.type == "aws:ebs/volume:Volume" and props.get("encrypted") is not True:
        problems.append("the EBS volume is not encrypted")
    return problems


def no_public_node_rpc(resource: Resource) -> list[str]:
    if resource.type != "kubernetes:core/v1:Service":
        return []
    if _get(resource.props, "spec", "type") not in ("LoadBalancer", "NodePort"):
        return []
    exposed = [
        port
        for port in _get(resource.props, "spec", "ports", default=[]) or []
        if port.get("name") == "rpc"
        or port.get("targetPort") == "rpc"
        or port.get("port") in ZCASH_RPC_PORTS
        or port.get("targetPort") in ZCASH_RPC_PORTS
    ]
    return ["the Service exposes a full node's JSON-RPC port outside the cluster"] if exposed else []


def no_root_or_privileged_containers(resource: Resource) -> list[str]:
    if resource.type not in WORKLOAD_TYPES and resource.type != "kubernetes:core/v1:Pod":
        return []
    pod = (
        resource.props.get("spec", {})
        if resource.type.endswith(":Pod")
        else _get(resource.props, "spec", "template", "spec", default={})
    )
    pod_context = pod.get("securityContext") or {}
    problems = []
    for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        context = container.get("securityContext") or {}
        name = container.get("name", "?")
        if context.get("privileged") is True:
            problems.append(f"container {name} is privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"container {name} may escalate privileges (allowPrivilegeEscalation is not false)")
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        user = context.get("runAsUser", pod_context.get("runAsUser"))
        if non_root is not True or user == 0:
            problems.append(f"container {name} may run as root (runAsNonRoot is not true, or runAsUser is 0)")
    return problems


def eks_endpoint_not_open_to_the_world(resource: Resource) -> list[str]:
    if resource.type not in EKS_CLUSTER_TYPES:
        return []
    props = resource.props
    if resource.type == "aws:eks/cluster:Cluster":
        props = props.get("vpcConfig") or {}
    # pulumi-eks and EKS both default to a public endpoint open to 0.0.0.0/0.
    if props.get("endpointPublicAccess", True) is False:
        return []
    cidrs = set(props.get("publicAccessCidrs") or WORLD)
    return ["the EKS API endpoint is public and open to the whole internet"] if cidrs & WORLD else []


def kms_keys_rotate(resource: Resource) -> list[str]:
    if resource.type != "aws:kms/key:Key":
        return []
    symmetric = resource.props.get("customerMasterKeySpec", resource.props.get("keySpec", "SYMMETRIC_DEFAULT"))
    if symmetric == "SYMMETRIC_DEFAULT" and resource.props.get("enableKeyRotation") is not True:
        return ["the KMS key does not rotate (enableKeyRotation is not true)"]
    return []


def network_policy_blocks_are_valid(resource: Resource) -> list[str]:
    """Every ipBlock `except` is a strict subset of its `cidr`: the API server rejects the policy otherwise
    (kubernetes pkg/apis/networking/validation ValidateIPBlock), so it fails at deploy time, not at plan time."""
    if resource.type != "kubernetes:networking.k8s.io/v1:NetworkPolicy":
        return []
    spec = resource.props.get("spec") or {}
    blocks = [
        peer["ipBlock"]
        for direction, peers in (("ingress", "from"), ("egress", "to"))
        for rule in spec.get(direction) or []
        for peer in rule.get(peers) or []
        if isinstance(peer, Mapping) and isinstance(peer.get("ipBlock"), Mapping)
    ]
    problems = []
    for block in blocks:
        cidr = ipaddress.ip_network(block["cidr"], strict=False)
        for entry in block.get("except") or []:
            excluded = ipaddress.ip_network(entry, strict=False)
            inside = excluded.version == cidr.version and excluded.network_address in cidr
            if not inside or excluded.prefixlen <= cidr.prefixlen:
                problems.append(f"ipBlock except {entry} is not a strict subset of its cidr {block['cidr']}")
    return problems


# ---- the whole stack --------------------------------------------------------------------------------------------


def _class_tags(storage_class: Resource) -> dict[str, str]:
    parameters = storage_class.props.get("parameters") or {}
    return dict(
        str(value).split("=", 1)
        for key, value in parameters.items()
        if key.startswith("tagSpecification_") and "=" in str(value)
    )


def snapshots_copied_cross_region(resources: list[Resource]) -> list[tuple[str | None, str]]:
    """In a primary stack (one that reads no other stack), every backed-up chain StorageClass is selected by a DLM
    policy that copies its snapshots, encrypted, to another region."""
    if any(r.type == "pulumi:pulumi:StackReference" for r in resources):
        return []  # a DR stack restores copies; it makes none
    classes = [
        r
        for r in resources
        if r.type == "kubernetes:storage.k8s.io/v1:StorageClass"
        and r.props.get("provisioner") == EBS_CSI
        and _class_tags(r).get("zbi.io/backup") == "true"
    ]
    policies = [r for r in resources if r.type == "aws:dlm/lifecyclePolicy:LifecyclePolicy"]
    problems: list[tuple[str | None, str]] = []
    for storage_class in classes:
        tags = _class_tags(storage_class)
        copying = [
            p
            for p in policies
            if (_get(p.props, "policyDetails", "targetTags") or {}).items() <= tags.items()
            and any(
                rule.get("encrypted") is True
                for schedule in _get(p.props, "policyDetails", "schedules", default=[]) or []
                for rule in schedule.get("crossRegionCopyRules") or []
            )
        ]
        if not copying:
            problems.append(
                (
                    storage_class.urn or None,
                    f"no DLM policy copies snapshots of {storage_class.name}'s volumes, encrypted, to another region",
                )
            )
    return problems


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def public_endpoints_use_tls(resources: list[Resource]) -> list[tuple[str | None, str]]:
    """Every public load balancer that is not Zcash P2P (a protocol of its own) ends in TLS: at the load balancer (an
    ACM certificate) or at the pods it selects (a kubernetes.io/tls Secret mounted, no insecure flag)."""
    tls_secrets = {
        (_get(r.props, "metadata", "namespace"), _get(r.props, "metadata", "name"))
        for r in resources
        if r.type == "kubernetes:core/v1:Secret" and r.props.get("type") == "kubernetes.io/tls"
    } | {
        # cert-manager writes a Certificate's key pair into its spec.secretName.
        (_get(r.props, "metadata", "namespace"), _get(r.props, "spec", "secretName"))
        for r in resources
        if r.type == "kubernetes:cert-manager.io/v1:Certificate"
    }
    workloads = [r for r in resources if r.type in WORKLOAD_TYPES]
    problems: list[tuple[str | None, str]] = []
    for service in resources:
        spec = service.props.get("spec") or {}
        if service.type != "kubernetes:core/v1:Service" or spec.get("type") != "LoadBalancer":
            continue
        ports = spec.get("ports") or []
        if ports and all(p.get("name") == "p2p" or p.get("targetPort") == "p2p" for p in ports):
            continue
        if ACM_CERTIFICATE_ANNOTATION in (_get(service.props, "metadata", "annotations") or {}):
            continue
        namespace = _get(service.props, "metadata", "namespace")
        selected = [
            w
            for w in workloads
            if _get(w.props, "metadata", "namespace") == namespace
            and _selects(spec.get("selector") or {}, _get(w.props, "spec", "template", "metadata", "labels") or {})
        ]
        if not selected or not all(_serves_tls(w, namespace, tls_secrets) for w in selected):
            problems.append((service.urn or None, f"public Service {service.name} does not end in TLS"))
    return problems


def _serves_tls(workload: Resource, namespace: Any, tls_secrets: set[tuple[Any, Any]]) -> bool:
    pod = _get(workload.props, "spec", "template", "spec") or {}
    secrets = [
        name
        for volume in pod.get("volumes") or []
        for name in [
            _get(volume, "secret", "secretName"),
            *(_get(s, "secret", "name") for s in _get(volume, "projected", "sources", default=[]) or []),
        ]
    ]
    mounted = {name for name in secrets if (namespace, name) in tls_secrets}
    insecure = any(
        "--no-tls-very-insecure" in [*(c.get("command") or []), *(c.get("args") or [])]
        for c in pod.get("containers") or []
    )
    return bool(mounted) and not insecure


def network_policies_enforced(resources: list[Resource]) -> list[tuple[str | None, str]]:
    """On EKS, NetworkPolicies are enforced only by the VPC CNI add-on's network policy agent
    (`enableNetworkPolicy: "true"`); a policy the cluster does not enforce protects nothing."""
    policies = [r for r in resources if r.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy"]
    if not policies or not any(r.type in EKS_CLUSTER_TYPES for r in resources):
        return []
    addons = [r for r in resources if r.type == "aws:eks/addon:Addon" and r.props.get("addonName") == ADDON_NAME]
    if any(enforces_network_policies(addon.props.get("configurationValues")) for addon in addons):
        return []
    where = addons[0].urn or addons[0].name if addons else None
    return [(where, f"{len(policies)} NetworkPolicies, but the VPC CNI add-on does not enforce NetworkPolicies")]


S3_BUCKET = "aws:s3/bucket:Bucket"
PUBLIC_ACCESS_BLOCKS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
KMS_ALGORITHMS = {"aws:kms", "aws:kms:dsse"}


def s3_buckets_private_and_encrypted(resources: list[Resource]) -> list[tuple[str | None, str]]:
    """Every bucket has a public access block with all four settings on, and default encryption with a KMS key:
    the exported chain is public data, but a public bucket is an open bill and a place anyone can write."""
    problems: list[tuple[str | None, str]] = []
    for bucket in (r for r in resources if r.type == S3_BUCKET):
        name = bucket.props.get("bucket")

        def of(type_: str, name: Any = name) -> list[Resource]:
            return [r for r in resources if r.type == type_ and r.props.get("bucket") == name]

        blocks = of("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
        if not any(all(block.props.get(k) is True for k in PUBLIC_ACCESS_BLOCKS) for block in blocks):
            problems.append((bucket.urn or bucket.name, f"bucket {name} does not block every kind of public access"))
        encryptions = of("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
        algorithms = {
            _get(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
            for encryption in encryptions
            for rule in encryption.props.get("rules") or []
        }
        if not algorithms or not algorithms <= KMS_ALGORITHMS:
            problems.append((bucket.urn or bucket.name, f"bucket {name} is not encrypted by default with a KMS key"))
    return problems
