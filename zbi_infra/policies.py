"""zBI's guardrails as policy rules: each check of `zbi_infra.guardrail_checks` (pure functions over resources: type,
name, input properties) with its name, why it exists and how to fix a violation; `evaluate` applies them all.

The same rules run in two places: `policy/`, a Pulumi policy pack that `pulumi preview --policy-pack policy`
enforces (pulumi-policy calls them with each resource's inputs), and `zbi plan --policy`, which applies them to the
offline plan, so a pull request is checked without cloud credentials. Nothing here imports Pulumi or pydantic: the
policy pack needs only pulumi-policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from zbi_infra.digest_guardrail import unpinned_images
from zbi_infra.guardrail_checks import ACM_CERTIFICATE_ANNOTATION as ACM_CERTIFICATE_ANNOTATION
from zbi_infra.guardrail_checks import (
    Resource,
    chain_storage_encrypted_and_retained,
    eks_endpoint_not_open_to_the_world,
    kms_keys_rotate,
    network_policies_enforced,
    network_policy_blocks_are_valid,
    no_public_node_rpc,
    no_root_or_privileged_containers,
    public_endpoints_use_tls,
    s3_buckets_private_and_encrypted,
    snapshots_copied_cross_region,
)


@dataclass(frozen=True)
class Violation:
    policy: str
    resource: str | None
    message: str


@dataclass(frozen=True)
class Guardrail:
    name: str
    description: str
    remediation: str
    # One resource at a time, or the whole stack at once: a list of messages, or of (resource URN, message).
    check_resource: Callable[[Resource], list[str]] | None = None
    check_stack: Callable[[list[Resource]], list[tuple[str | None, str]]] | None = None


GUARDRAILS = [
    Guardrail(
        "chain-storage-encrypted-and-retained",
        "Chain data takes days to sync: its volumes must be encrypted and must outlive their claims and workloads.",
        "Use the zBI gp3 StorageClass (encrypted with the cluster's EBS key, reclaimPolicy Retain) and keep "
        "persistentVolumeClaimRetentionPolicy at Retain.",
        check_resource=chain_storage_encrypted_and_retained,
    ),
    Guardrail(
        "no-public-node-rpc",
        "A full node's JSON-RPC answers every caller with the node's credentials: it is never behind a load "
        "balancer or node port.",
        "Expose RPC only as a ClusterIP Service; give end users the access gateway instead.",
        check_resource=no_public_node_rpc,
    ),
    Guardrail(
        "no-root-or-privileged-containers",
        "Every container runs as a non-root user, unprivileged, without privilege escalation.",
        "Set runAsNonRoot: true (and a non-zero runAsUser), privileged: false and allowPrivilegeEscalation: false.",
        check_resource=no_root_or_privileged_containers,
    ),
    Guardrail(
        "eks-endpoint-not-open-to-the-world",
        "The EKS API endpoint is private, or public only to an allowlist.",
        "Set zbi:cluster.endpoint.publicAccess to false, or list your ranges in publicAccessCidrs.",
        check_resource=eks_endpoint_not_open_to_the_world,
    ),
    Guardrail(
        "kms-key-rotation",
        "Every symmetric KMS key rotates its key material yearly.",
        "Set enableKeyRotation: true on the key.",
        check_resource=kms_keys_rotate,
    ),
    Guardrail(
        "network-policy-blocks-valid",
        "Every NetworkPolicy ipBlock except lies strictly inside its cidr; the API server rejects the policy "
        "otherwise, and the instance would deploy without it.",
        "Carve out only addresses inside the block (and never the whole block); drop the except when the block does "
        "not contain the address.",
        check_resource=network_policy_blocks_are_valid,
    ),
    Guardrail(
        "snapshots-copied-cross-region",
        "In a primary stack, chain volumes are snapshotted and their snapshots copied, encrypted, to another region, "
        "so a regional outage loses hours of data, not days of sync.",
        "Keep zbi:backup enabled (DLM with a cross-region copy rule to zbi:backup.drRegion).",
        check_stack=snapshots_copied_cross_region,
    ),
    Guardrail(
        "public-endpoints-use-tls",
        "Every public endpoint but Zcash P2P ends in TLS, at the load balancer or at the pods.",
        "Give the instance a certificate authority (zBI's default) or an ACM certificate annotation; never run a "
        "public light-wallet server with --no-tls-very-insecure.",
        check_stack=public_endpoints_use_tls,
    ),
    Guardrail(
        "network-policies-enforced",
        "On EKS the cluster enforces the NetworkPolicies the stack declares: tenant isolation and the gateway in "
        "front of node RPC rest on them.",
        'Install the vpc-cni add-on with configurationValues {"enableNetworkPolicy": "true"} (ZbiCluster does).',
        check_stack=network_policies_enforced,
    ),
    Guardrail(
        "images-pinned-by-digest",
        "An instance with requireImageDigests pulls no image by tag alone: a retagged image never reaches it.",
        "Run tools/pin_images.py where the registries are reachable (it records every default image's digest in "
        "zbi_infra/data/image-digests.json), or set image.digest on the instance's overridden image.",
        check_stack=unpinned_images,
    ),
    Guardrail(
        "s3-buckets-private-and-encrypted",
        "Every S3 bucket (the history export's data and Athena results) blocks all public access and encrypts "
        "objects by default with a KMS key.",
        "Give the bucket a BucketPublicAccessBlock with all four settings true and a "
        "BucketServerSideEncryptionConfiguration with sseAlgorithm aws:kms (ZbiHistoryExport does).",
        check_stack=s3_buckets_private_and_encrypted,
    ),
]


def evaluate(resources: Iterable[Resource]) -> list[Violation]:
    listed = list(resources)
    violations = []
    for guardrail in GUARDRAILS:
        if guardrail.check_resource:
            for resource in listed:
                violations += [
                    Violation(guardrail.name, resource.urn or resource.name, message)
                    for message in guardrail.check_resource(resource)
                ]
        if guardrail.check_stack:
            violations += [Violation(guardrail.name, urn, message) for urn, message in guardrail.check_stack(listed)]
    return violations
