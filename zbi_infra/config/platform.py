"""The AWS platform a stack declares: region, zones, network, EKS cluster and its node groups."""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, StringConstraints, ValidationInfo, field_validator, model_validator

from zbi_infra.config.base import (
    LABEL_KEY_PATTERN,
    AwsRegion,
    DnsLabel,
    GitHubOwner,
    StrictBool,
    StrictInt,
    StrictModel,
    Tags,
    listed_twice,
)
from zbi_infra.config.names import MAX_PUBLIC_ACCESS_CIDRS, check_cidrs, check_cluster_name
from zbi_infra.network_plan import MAX_VPC_PREFIX, MIN_VPC_PREFIX
from zbi_infra.zones import ZONE_ID_PATTERN, zone_id_prefix


class NatStrategy(StrEnum):
    PER_AZ = "per-az"
    SINGLE = "single"


class FlowLogsConfig(StrictModel):
    # Record the VPC's flow logs.
    enabled: StrictBool = True
    # Days CloudWatch Logs keeps them (a value CloudWatch accepts).
    retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653] = 30


class PlatformConfig(StrictModel):
    """`zbi:platform`: where the platform lives and how its network is laid out."""

    # The AWS region every resource of the stack is created in (aws:region must agree).
    region: AwsRegion = "us-east-1"
    # Zones the VPC, node groups and replicas spread over.
    availability_zone_count: StrictInt = Field(default=5, ge=2, le=6)
    # 2 to 6 zone IDs (e.g. use1-az1) to use instead of availabilityZoneCount (not both).
    zone_ids: list[str] | None = None
    # The VPC's IPv4 range, split into a public and a private subnet per zone.
    vpc_cidr: str = "10.20.0.0/16"
    # per-az: a NAT gateway in each zone (a zone outage leaves the others egress); single: one, cheaper.
    nat_strategy: NatStrategy = NatStrategy.PER_AZ
    # VPC flow logs to CloudWatch Logs.
    flow_logs: FlowLogsConfig = Field(default_factory=FlowLogsConfig)
    # AWS tags added to the platform's resources.
    tags: Tags

    @field_validator("zone_ids")
    @classmethod
    def _zone_ids_in_region(cls, zone_ids: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if zone_ids is None:
            return None
        if not 2 <= len(zone_ids) <= 6:
            raise ValueError(f"list 2 to 6 zone IDs, got {len(zone_ids)}")
        if listed_twice(zone_ids):
            raise ValueError("a zone ID is listed twice. Fix: list each zone once")
        region = info.data.get("region")
        prefix = zone_id_prefix(region) if region else None
        for zone_id in zone_ids:
            match = ZONE_ID_PATTERN.match(zone_id)
            if not match:
                raise ValueError(f"'{zone_id}' is not a zone ID. Fix: use zone IDs such as use1-az1, not names")
            if prefix and match["prefix"] != prefix:
                raise ValueError(f"'{zone_id}' is not in region {region}. Fix: use zone IDs starting with '{prefix}-'")
        return zone_ids

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_cidr_fits(cls, cidr: str) -> str:
        try:
            network = ipaddress.IPv4Network(cidr, strict=True)
        except ValueError as exc:
            raise ValueError(f"'{cidr}' is not an IPv4 network CIDR ({exc}). Fix: e.g. 10.20.0.0/16") from None
        if not MIN_VPC_PREFIX <= network.prefixlen <= MAX_VPC_PREFIX:
            raise ValueError(
                f"/{network.prefixlen} does not fit six zones of private and public subnets with room to grow. "
                f"Fix: use a /{MIN_VPC_PREFIX} to /{MAX_VPC_PREFIX}"
            )
        # ipaddress's is_private also holds for loopback (127/8) and link-local (169.254/16), which no VPC can use.
        if not any(network.subnet_of(ipaddress.IPv4Network(block)) for block in RFC_1918):
            raise ValueError(f"{cidr} is not a private (RFC 1918) range. Fix: use e.g. 10.20.0.0/16")
        return cidr

    @model_validator(mode="after")
    def _zone_count_or_zone_ids(self) -> PlatformConfig:
        if self.zone_ids is not None and "availability_zone_count" in self.model_fields_set:
            raise ValueError(
                "zoneIds and availabilityZoneCount are both set, and zoneIds alone decides the zones. "
                "Fix: remove availabilityZoneCount"
            )
        return self


RFC_1918 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


class EndpointConfig(StrictModel):
    """`zbi:cluster.endpoint`: the private endpoint is always on; the public one is opt-in and allowlisted."""

    # Also open the cluster's API endpoint to the internet, for the CIDRs below only.
    public_access: StrictBool = False
    # Networks allowed to reach the public API endpoint (required when publicAccess is true, refused otherwise).
    public_access_cidrs: list[str] = Field(default_factory=list)

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs_valid(cls, cidrs: list[str], info: ValidationInfo) -> list[str]:
        check_cidrs(cidrs, public=True, limit=MAX_PUBLIC_ACCESS_CIDRS, what="the EKS public endpoint")
        if cidrs and not info.data.get("public_access"):
            raise ValueError("publicAccessCidrs is set but publicAccess is false. Fix: remove it, or enable it")
        if info.data.get("public_access") and not cidrs:
            raise ValueError(
                "publicAccess is true but no CIDR is allowed. Fix: list the networks that may reach the API "
                "(e.g. your office or CI runner range); 0.0.0.0/0 must be written out if really meant"
            )
        return cidrs


class AdminScope(StrEnum):
    CLUSTER = "cluster"
    NAMESPACE = "namespace"


# IAM identifiers: role and user names of letters, digits and +=,.@_- under an optional path; the commercial
# partition only (zbi_infra/regions.py).
ARN_PRINCIPAL_PATTERN = r"^arn:aws:iam::\d{12}:(role|user)/[\w+=,.@/-]+$"
# IAM's limit on a role or user name (the last part of the ARN, after any path).
MAX_IAM_NAME = 64


def _principal_arn(value: object) -> object:
    if isinstance(value, str) and value.startswith("arn:") and not value.startswith("arn:aws:"):
        partition = value.split(":")[1] if value.count(":") >= 1 else "?"
        raise ValueError(
            f"{value[:80]!r} is in partition {partition!r}; zBI builds in the commercial aws partition. "
            "Fix: use an arn:aws:iam::<account>:role/<name> principal"
        )
    # ASCII only: IAM names are [A-Za-z0-9+=,.@_-], where Python's \w alone would take any script's letters.
    if isinstance(value, str) and (len(value) > 2048 or not re.match(ARN_PRINCIPAL_PATTERN, value, re.ASCII)):
        raise ValueError(
            f"{value[:80]!r} is not an IAM role or user ARN (IAM names use ASCII letters, digits and +=,.@_- only). "
            "Fix: write arn:aws:iam::<12-digit account>:role/<name>"
        )
    if isinstance(value, str) and len(name := value.rsplit("/", 1)[-1]) > MAX_IAM_NAME:
        raise ValueError(f"{name[:70]!r}: IAM names have at most {MAX_IAM_NAME} characters. Fix: use the role's name")
    return value


PrincipalArn = Annotated[str, BeforeValidator(_principal_arn)]


class AdminConfig(StrictModel):
    """One EKS access entry."""

    # A name for the access entry.
    name: DnsLabel
    # The IAM role or user given access to the cluster.
    principal_arn: PrincipalArn
    # The same person or team on GitHub: owns the platform's files in CODEOWNERS (`zbi roles`).
    github: GitHubOwner | None = None
    # The EKS access policy granted: cluster-admin, admin, edit or view.
    policy: Literal["cluster-admin", "admin", "edit", "view"] = "cluster-admin"
    # Limit the policy to these namespaces (not with cluster-admin); empty: the whole cluster.
    namespaces: list[DnsLabel] = Field(default_factory=list)

    @field_validator("namespaces")
    @classmethod
    def _namespaces_need_namespaced_policy(cls, namespaces: list[str], info: ValidationInfo) -> list[str]:
        if namespaces and info.data.get("policy") == "cluster-admin":
            raise ValueError("cluster-admin is cluster-wide. Fix: drop namespaces, or use policy admin/edit/view")
        return namespaces


class AmiType(StrEnum):
    AL2023_X86_64 = "AL2023_x86_64_STANDARD"
    AL2023_ARM_64 = "AL2023_ARM_64_STANDARD"
    BOTTLEROCKET_X86_64 = "BOTTLEROCKET_x86_64"
    BOTTLEROCKET_ARM_64 = "BOTTLEROCKET_ARM_64"


# Kubernetes label values (and EKS taint values): at most 63 characters, alphanumeric at both ends.
LABEL_VALUE_PATTERN = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


class TaintConfig(StrictModel):
    """EKS API reference, Taint: key 1-63 characters, value 0-63; both follow Kubernetes label syntax."""

    # The taint's key.
    key: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    # The taint's value.
    value: Annotated[str, StringConstraints(max_length=63)] = ""
    # What the taint does to pods that do not tolerate it.
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]

    @field_validator("key")
    @classmethod
    def _key_is_a_label_key(cls, key: str) -> str:
        if not LABEL_KEY_PATTERN.match(key):
            raise ValueError(f"{key[:63]!r} is not a Kubernetes taint key. Fix: e.g. zbi.io/dedicated")
        return key

    @field_validator("value")
    @classmethod
    def _value_is_a_label_value(cls, value: str) -> str:
        if not LABEL_VALUE_PATTERN.match(value):
            raise ValueError(f"{value[:63]!r} is not a Kubernetes taint value. Fix: letters, digits, - _ .")
        return value


INSTANCE_TYPE_PATTERN = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"
# EC2 families on AWS Graviton (arm64): the family's suffix letters contain a g (m7g, c6gn, r7gd, t4g, g5g, x2gd,
# im4gn, is4gen), plus a1. Everything else zBI accepts is x86_64.
_ARM_FAMILY = re.compile(r"^(a1|[a-z]+[0-9]+[a-z]*g[a-z]*)$")


def instance_architecture(instance_type: str) -> str:
    family = instance_type.split(".", 1)[0].split("-", 1)[0]
    return "arm64" if _ARM_FAMILY.match(family) else "x86_64"


class NodeGroupConfig(StrictModel):
    """`zbi:cluster.nodeGroups.<name>`: one managed node group *per zone*; sizes are per zone."""

    # EC2 instance types the group may launch, in order of preference.
    instance_types: Annotated[
        list[Annotated[str, StringConstraints(pattern=INSTANCE_TYPE_PATTERN)]], Field(min_length=1, max_length=20)
    ] = Field(default_factory=lambda: ["m7i.large"])
    # The EKS-optimized AMI family of the nodes.
    ami_type: AmiType = AmiType.AL2023_X86_64
    # ON_DEMAND, or SPOT (cheaper; nodes can be taken back with two minutes' notice).
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"
    # Fewest nodes per zone.
    min_size: StrictInt = Field(default=1, ge=0, le=100)
    # Nodes per zone at creation (the cluster autoscaler moves it later).
    desired_size: StrictInt = Field(default=1, ge=0, le=100)
    # Most nodes per zone.
    max_size: StrictInt = Field(default=3, ge=1, le=100)
    # Each node's root volume (images and logs; chain data has its own volumes).
    disk_size_gib: StrictInt = Field(default=50, ge=20, le=16384)
    # Kubernetes labels on the group's nodes.
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[TaintConfig] = Field(default_factory=list)

    @field_validator("ami_type", mode="before")
    @classmethod
    def _no_al2(cls, value: object) -> object:
        if isinstance(value, str) and value.startswith("AL2_"):
            raise ValueError(
                f"{value}: Amazon Linux 2 node images are deprecated for EKS. Fix: use AL2023_x86_64_STANDARD "
                "or BOTTLEROCKET_x86_64"
            )
        return value

    @field_validator("desired_size")
    @classmethod
    def _desired_at_least_min(cls, desired: int, info: ValidationInfo) -> int:
        minimum = info.data.get("min_size")
        if minimum is not None and desired < minimum:
            raise ValueError(f"desiredSize ({desired}) is below minSize ({minimum}). Fix: raise desiredSize")
        return desired

    @field_validator("max_size")
    @classmethod
    def _max_at_least_desired(cls, maximum: int, info: ValidationInfo) -> int:
        desired = info.data.get("desired_size")
        if desired is not None and maximum < desired:
            raise ValueError(f"maxSize ({maximum}) is below desiredSize ({desired}). Fix: raise maxSize")
        return maximum

    @field_validator("labels")
    @classmethod
    def _labels_valid(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            if not LABEL_KEY_PATTERN.match(key):
                raise ValueError(f"'{key}' is not a Kubernetes label key. Fix: e.g. zbi.io/role")
            if not LABEL_VALUE_PATTERN.match(value):
                raise ValueError(
                    f"label {key}: {value[:63]!r} is not a Kubernetes label value. Fix: letters, digits, - _ ."
                )
        return labels

    @model_validator(mode="after")
    def _one_architecture_matching_the_ami(self) -> NodeGroupConfig:
        wanted = "arm64" if "ARM" in self.ami_type.value else "x86_64"
        wrong = [t for t in self.instance_types if instance_architecture(t) != wanted]
        if wrong:
            fix = "AL2023_ARM_64_STANDARD" if wanted == "x86_64" else "AL2023_x86_64_STANDARD"
            raise ValueError(
                f"instanceTypes: {', '.join(wrong)} cannot boot the {wanted} image of amiType {self.ami_type.value}. "
                f"Fix: use {wanted} instance types, or set amiType to {fix} for all of them"
            )
        return self

    @field_validator("taints")
    @classmethod
    def _taints_unique(cls, taints: list[TaintConfig]) -> list[TaintConfig]:
        seen = {(t.key, t.effect) for t in taints}
        if len(seen) != len(taints):
            raise ValueError("two taints share a key and effect. Fix: keep one")
        return taints


# Versions EKS offers in standard or extended support (EKS user guide, "Kubernetes version lifecycle", as of
# 2026-11); kubernetes-validate carries the schemas of each.
EKS_KUBERNETES_VERSIONS = ("1.32", "1.33", "1.34", "1.35", "1.36")
NodeGroupName = Annotated[str, StringConstraints(pattern=r"^[a-z]([-a-z0-9]{0,18}[a-z0-9])?$")]


class ClusterConfig(StrictModel):
    """`zbi:cluster`: the EKS cluster."""

    # EKS CreateCluster: ^[0-9A-Za-z][A-Za-z0-9\-_]*$; shorter still so derived IAM role names fit (names.py).
    name: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z][-a-zA-Z0-9]{0,62}$")]
    # The EKS Kubernetes version.
    version: str = "1.33"
    endpoint: EndpointConfig = Field(default_factory=EndpointConfig)
    admins: list[AdminConfig] = Field(default_factory=list)
    # The identity that creates the cluster keeps cluster-admin (pulumi-eks 4.x always grants it; false is refused).
    bootstrap_creator_admin: StrictBool = True
    # Days CloudWatch Logs keeps the control plane's logs.
    log_retention_days: Literal[7, 14, 30, 60, 90, 180, 365] = 90
    # IMDSv2 hop limit on the nodes: 1 keeps pods from reading the node role's credentials.
    imds_hop_limit: StrictInt = Field(default=1, ge=1, le=2)
    # Session Manager access to every node (AmazonSSMManagedInstanceCore on the node role): off unless asked for.
    node_ssm_access: StrictBool = False
    node_groups: dict[NodeGroupName, NodeGroupConfig] = Field(default_factory=lambda: {"general": NodeGroupConfig()})

    @field_validator("name")
    @classmethod
    def _derived_names_fit(cls, name: str) -> str:
        check_cluster_name(name)
        return name

    @field_validator("version")
    @classmethod
    def _eks_offers_it(cls, version: str) -> str:
        if version not in EKS_KUBERNETES_VERSIONS:
            raise ValueError(
                f"EKS does not offer Kubernetes {version[:20]!r}. Fix: use one of {', '.join(EKS_KUBERNETES_VERSIONS)}"
            )
        return version

    @field_validator("bootstrap_creator_admin")
    @classmethod
    def _creator_admin_is_always_granted(cls, value: bool) -> bool:
        if not value:
            raise ValueError(
                "pulumi-eks 4.x always grants the identity that creates the cluster cluster-admin access, so false "
                "would be silently ignored. Fix: remove the key; to revoke that access later, delete its access "
                "entry in EKS after listing your own admins under zbi:cluster.admins"
            )
        return value

    @field_validator("admins")
    @classmethod
    def _admins_unique(cls, admins: list[AdminConfig]) -> list[AdminConfig]:
        names = listed_twice([a.name for a in admins])
        if names:
            raise ValueError(f"admin name(s) {', '.join(names)} appear twice. Fix: give each admin a unique name")
        principals = listed_twice([a.principal_arn for a in admins])
        if principals:
            raise ValueError(
                f"principal {principals[0]} is listed twice (EKS allows one access entry per principal). Fix: keep one"
            )
        return admins

    @field_validator("node_groups")
    @classmethod
    def _at_least_one_group(cls, groups: dict[str, NodeGroupConfig]) -> dict[str, NodeGroupConfig]:
        if not groups:
            raise ValueError("no node group. Fix: declare at least one under nodeGroups")
        system = groups.get("system")  # platform pods go there (zbi_infra/system_nodes.py); tenants must not
        if system is not None and not any(t.effect in ("NoSchedule", "NoExecute") for t in system.taints):
            raise ValueError(
                "the system node group has no NoSchedule taint, so tenant pods would run next to the platform. "
                "Fix: add taints: [{key: zbi.io/system, value: 'true', effect: NoSchedule}] to nodeGroups.system"
            )
        if len(groups) == 1 and system is not None:
            raise ValueError("only a system node group: tenant pods have nowhere to run. Fix: add another node group")
        return groups
