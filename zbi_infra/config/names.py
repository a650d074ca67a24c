"""Names, tags and network ranges that AWS or Kubernetes would refuse only at deploy time, checked up front.

Each limit cites where AWS or Kubernetes documents it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from zbi_infra.config.base import listed_twice

# EC2 user guide, "Tag restrictions": 50 user tags per resource, keys 1-128 and values 0-256 Unicode characters of
# letters, digits, spaces and _ . : / = + - @; the aws: prefix is reserved.
MAX_TAGS_PER_RESOURCE = 50
_TAG_TEXT = re.compile(r"^[\w .:/=+\-@]*$", flags=re.UNICODE)
# Tags zBI adds itself on the most-tagged resource (node groups): counted against the 50.
ZBI_TAG_BUDGET = 10

# IAM user guide, "IAM object quotas": role names at most 64 characters. Pulumi auto-names roles as the resource
# name plus "-" and 7 random characters.
MAX_IAM_ROLE_NAME = 64
AUTONAME_SUFFIX = 8
# EKS API reference, CreateNodegroup: nodegroupName up to 63 characters; CreateCluster: name up to 100 characters,
# ^[0-9A-Za-z][A-Za-z0-9\-_]*$.
MAX_NODE_GROUP_NAME = 63
# The longest role a cluster component derives from the cluster name (ZbiCluster: "<name>-ebs-csi-role").
LONGEST_ROLE_SUFFIX = "-vpc-cni-role"
# EKS user guide, "Cluster API server endpoint": at most 40 CIDR blocks for the public endpoint.
MAX_PUBLIC_ACCESS_CIDRS = 40
# VPC user guide, "Amazon VPC quotas": 60 inbound rules per security group (what a LoadBalancer's source ranges
# become on the NLB's security group).
MAX_LOAD_BALANCER_SOURCE_RANGES = 60


def check_aws_tags(tags: dict[str, str], *, budget: int = MAX_TAGS_PER_RESOURCE - ZBI_TAG_BUDGET) -> None:
    if len(tags) > budget:
        raise ValueError(
            f"{len(tags)} tags; AWS allows {MAX_TAGS_PER_RESOURCE} per resource and zBI adds up to {ZBI_TAG_BUDGET} "
            f"of its own. Fix: keep at most {budget}"
        )
    for key, value in tags.items():
        if not 1 <= len(key) <= 128:
            raise ValueError(f"tag key {key[:40]!r}…: 1 to 128 characters. Fix: shorten it")
        if len(value) > 256:
            raise ValueError(f"tag {key}: the value has {len(value)} characters, AWS allows 256. Fix: shorten it")
        if key.lower().startswith("aws:"):
            raise ValueError(f"tag key {key!r}: the aws: prefix is reserved for AWS. Fix: use another prefix")
        for text in (key, value):
            if not _TAG_TEXT.match(text):
                raise ValueError(
                    f"tag {key[:40]!r}: {text[:40]!r} has characters AWS refuses. "
                    "Fix: use letters, digits, spaces and _ . : / = + - @"
                )


def check_cidrs(cidrs: Iterable[str], *, public: bool, limit: int, what: str) -> list[str]:
    """Each a CIDR; for allowlists of public endpoints, not a private range (no public client has one)."""
    checked = list(cidrs)
    if len(checked) > limit:
        raise ValueError(f"{len(checked)} CIDRs; {what} takes at most {limit}. Fix: aggregate ranges")
    twice = listed_twice(checked)
    if twice:
        raise ValueError(f"{twice[0]} is listed twice. Fix: list each range once")
    for cidr in checked:
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            raise ValueError(f"{cidr[:60]!r} is not a CIDR. Fix: write e.g. 203.0.113.0/24") from None
        if public and not network.is_global and network.prefixlen > 0:
            raise ValueError(
                f"{cidr} is a private or reserved range, which never reaches a public endpoint. "
                "Fix: list the public ranges your clients come from"
            )
    return checked


def check_cluster_name(name: str) -> None:
    longest_role = f"{name}{LONGEST_ROLE_SUFFIX}"
    if len(longest_role) + AUTONAME_SUFFIX > MAX_IAM_ROLE_NAME:
        limit = MAX_IAM_ROLE_NAME - AUTONAME_SUFFIX - len(LONGEST_ROLE_SUFFIX)
        raise ValueError(
            f"{name!r} ({len(name)} characters) makes IAM role names over {MAX_IAM_ROLE_NAME} characters "
            f"(e.g. {longest_role}-xxxxxxx). Fix: use at most {limit} characters"
        )


def check_node_group_name(cluster: str, group: str, zone_ids: Iterable[str]) -> None:
    for zone_id in zone_ids:
        derived = f"{cluster}-{group}-{zone_id}"
        if len(derived) > MAX_NODE_GROUP_NAME:
            raise ValueError(
                f"node group {group!r} becomes {derived!r} ({len(derived)} characters); EKS allows "
                f"{MAX_NODE_GROUP_NAME}. Fix: shorten the group name or the cluster name"
            )
