"""zBI's components for every Pulumi language, in the shapes Pulumi's component host understands.

Each component takes a `TypedDict` named `args` of primitives, lists, string-keyed maps and nested `TypedDict`s;
the docstrings below become the package schema's descriptions. Inside, the plain values are validated by the same
pydantic models a zBI stack file goes through, so a TypeScript or YAML program gets the same error messages (naming
the key and the fix) as a Python one, and then the library's own component is built as the only child.
"""

from typing import Any, NotRequired, TypedDict

import pulumi
from pydantic import ValidationError

from zbi_infra.backup import ZbiBackups as LibraryBackups
from zbi_infra.backup import ZbiBackupsArgs as LibraryBackupsArgs
from zbi_infra.cluster import ZbiCluster as LibraryCluster
from zbi_infra.cluster import ZbiClusterArgs as LibraryClusterArgs
from zbi_infra.config.errors import describe
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.config.platform import ClusterConfig, FlowLogsConfig, NatStrategy
from zbi_infra.node import ZcashNode as LibraryNode
from zbi_infra.node import ZcashNodeArgs as LibraryNodeArgs
from zbi_infra.tls import ZbiCertificateAuthority
from zbi_infra.vpc import ZbiVpc as LibraryVpc
from zbi_infra.vpc import ZbiVpcArgs as LibraryVpcArgs
from zbi_infra.zones import lookup_zones, select_zones


def _validated(model: Any, values: dict[str, Any], key: str) -> Any:
    try:
        return model.model_validate(_plain(values))
    except ValidationError as exc:
        error = describe(model, exc)
        raise ValueError("\n".join(p.replace("zbi:", f"{key}.", 1) for p in error.problems)) from None


def _plain(value: Any) -> Any:
    """Drop unset (None) keys: the models' defaults apply, as they do for a key left out of a stack file."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# ---- ZcashNode ---------------------------------------------------------------------------------------------------


class ImageArgs(TypedDict):
    """An image override, e.g. for a fork."""

    repository: NotRequired[str]
    """Repository without a tag (zfnd/zebra); a tag or digest inside it is refused."""
    tag: NotRequired[str]
    """A pinned version tag; `latest` is refused."""
    digest: NotRequired[str]
    """sha256:… to pin by digest."""


class ResourcesArgs(TypedDict):
    """Requests and optional limits of a container."""

    cpu: str
    """CPU request, e.g. 2 or 500m."""
    memory: str
    """Memory request, e.g. 8Gi or 512Mi."""
    cpu_limit: NotRequired[str]
    """CPU limit; default 4x the request."""
    memory_limit: NotRequired[str]
    """Memory limit; default 2x the request."""


class StorageArgs(TypedDict):
    """The chain-data volume of each full-node replica."""

    size_gib: NotRequired[int]
    """Volume size in GiB (default 500)."""
    iops: NotRequired[int]
    """Provisioned gp3 IOPS on EBS (default 6000; at most 500 per GiB)."""
    throughput_mibps: NotRequired[int]
    """Provisioned gp3 throughput in MiB/s on EBS (default 250)."""


class ReleaseArgs(TypedDict):
    """A node release newer than zBI's release table (docs/releases.md): what Mainnet needs to know about the tag."""

    estimated_release_height: int
    """ESTIMATED_RELEASE_HEIGHT in the release's end_of_support.rs at the tag."""
    released: str
    """The tag's date, YYYY-MM-DD."""
    source: str
    """The https URL the height and date were read from."""


class NodeArgs(TypedDict):
    """The full-node tier."""

    kind: NotRequired[str]
    """zebrad (default), zakurad (Zakura, docs/zakura.md) or zcashd (end of life: regtest only)."""
    replicas: NotRequired[int]
    """Replicas, each a full node with its own volume (default 2)."""
    image: NotRequired[ImageArgs]
    """Image override."""
    resources: NotRequired[ResourcesArgs]
    """Requests and limits."""
    storage: NotRequired[StorageArgs]
    """Chain-data volume."""
    inbound_p2p: NotRequired[bool]
    """A load balancer for inbound P2P, with the address advertised to peers."""
    release: NotRequired[ReleaseArgs]
    """Release data for a tag zBI's table does not hold (Mainnet refuses unknown releases)."""
    extra_options: NotRequired[dict[str, Any]]
    """zebrad `section.key` (or zcashd option) to value; checked against the pinned release's keys."""


class LightwalletArgs(TypedDict):
    """The autoscaled light-wallet tier."""

    kind: NotRequired[str]
    """lightwalletd (default), zaino or none."""
    min_replicas: NotRequired[int]
    """Fewest replicas (default 2)."""
    max_replicas: NotRequired[int]
    """Most replicas the autoscaler may run (default 6)."""
    target_cpu_percent: NotRequired[int]
    """CPU utilisation the autoscaler aims for (default 70)."""
    resources: NotRequired[ResourcesArgs]
    """Requests and limits."""
    cache_size_gib: NotRequired[int]
    """Each replica's cache volume in GiB (default 40)."""


class EndpointsArgs(TypedDict):
    """What the outside world may reach. A full node's RPC is never public."""

    public_grpc: NotRequired[bool]
    """A public gRPC load balancer on 443, TLS at the pods."""
    hostnames: NotRequired[list[str]]
    """Names in the server certificate."""
    allowed_cidrs: NotRequired[list[str]]
    """Client ranges allowed to reach the public endpoint (default everyone)."""


class ZcashNodeArgs(TypedDict):
    """One Zcash instance."""

    network: str
    """mainnet, testnet or regtest."""
    node: NotRequired[NodeArgs]
    """The full-node tier."""
    lightwallet: NotRequired[LightwalletArgs]
    """The light-wallet tier."""
    endpoints: NotRequired[EndpointsArgs]
    """Public endpoints."""
    storage_class_name: NotRequired[str]
    """StorageClass of the volumes; the cluster's default class when unset."""
    tls: NotRequired[bool]
    """Serve gRPC with a certificate from a certificate authority made for this instance (default true)."""


class ZcashNode(pulumi.ComponentResource):
    """A Zcash instance on Kubernetes: full nodes (zebrad) and an autoscaled light-wallet tier, hardened, with
    NetworkPolicies, disruption budgets and retained chain volumes. Give it a Kubernetes provider in its options."""

    namespace: pulumi.Output[str]
    """The instance's namespace."""
    rpc_endpoint: pulumi.Output[str]
    """The full node's RPC, inside the cluster."""
    grpc_endpoint: pulumi.Output[str]
    """The light-wallet gRPC endpoint (empty without a light-wallet tier)."""
    ca_cert_pem: pulumi.Output[str]
    """The certificate authority clients trust for gRPC (empty without TLS)."""

    def __init__(self, name: str, args: ZcashNodeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zbi:index:ZcashNode", name, {}, opts)
        instance_keys = {k: v for k, v in args.items() if k in ("network", "node", "lightwallet", "endpoints")}
        instance = _validated(InstanceConfig, instance_keys, "args")
        authority = ZbiCertificateAuthority(f"{name}-ca", opts=pulumi.ResourceOptions(parent=self))
        tls = args.get("tls", True) is not False
        node = LibraryNode(
            name,
            LibraryNodeArgs(
                config=instance,
                storage_class_name=args.get("storage_class_name"),
                certificate_authority=authority if tls else None,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.namespace = node.namespace
        self.rpc_endpoint = node.rpc_endpoint
        self.grpc_endpoint = node.grpc_endpoint or pulumi.Output.from_input("")
        self.ca_cert_pem = authority.ca_cert_pem if tls else pulumi.Output.from_input("")
        self.register_outputs(
            {
                "namespace": self.namespace,
                "rpcEndpoint": self.rpc_endpoint,
                "grpcEndpoint": self.grpc_endpoint,
                "caCertPem": self.ca_cert_pem,
            }
        )


# ---- ZbiVpc ------------------------------------------------------------------------------------------------------


class ZbiVpcArgs(TypedDict):
    """A VPC across a region's availability zones, every per-zone child keyed by zone ID."""

    region: str
    """The AWS region (commercial)."""
    availability_zone_count: NotRequired[int]
    """How many zones (2-6, default 3), chosen by zone ID among those EKS supports."""
    zone_ids: NotRequired[list[str]]
    """Exactly these zones (use1-az1, …) instead of a count."""
    cidr: NotRequired[str]
    """A private /16 to /20 (default 10.20.0.0/16)."""
    single_nat: NotRequired[bool]
    """One NAT gateway for every zone (cheaper; a zone outage cuts egress everywhere). Default: one per zone."""
    cluster_name: NotRequired[str]
    """EKS cluster whose load balancers the subnets are tagged for."""


class ZbiVpc(pulumi.ComponentResource):
    """A VPC with public and private subnets, route tables and NAT per zone, flow logs and an S3 endpoint."""

    vpc_id: pulumi.Output[str]
    """The VPC."""
    private_subnet_ids: pulumi.Output[list[str]]
    """Private subnets, in zone-ID order."""
    public_subnet_ids: pulumi.Output[list[str]]
    """Public subnets, in zone-ID order."""
    zone_ids: pulumi.Output[list[str]]
    """The zones, by ID."""

    def __init__(self, name: str, args: ZbiVpcArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zbi:index:ZbiVpc", name, {}, opts)
        region = args["region"]
        zones = select_zones(
            lookup_zones(region),
            region=region,
            count=args.get("availability_zone_count") or 3,
            zone_ids=args.get("zone_ids"),
            config_key="args",
        )
        vpc = LibraryVpc(
            name,
            LibraryVpcArgs(
                region=region,
                zones=zones,
                cidr=args.get("cidr") or "10.20.0.0/16",
                nat_strategy=NatStrategy.SINGLE if args.get("single_nat") else NatStrategy.PER_AZ,
                flow_logs=FlowLogsConfig(),
                cluster_name=args.get("cluster_name"),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.vpc_id = vpc.vpc_id
        self.private_subnet_ids = vpc.private_subnet_ids
        self.public_subnet_ids = vpc.public_subnet_ids
        self.zone_ids = pulumi.Output.from_input(vpc.zone_ids)
        self.register_outputs({"vpcId": self.vpc_id, "zoneIds": self.zone_ids})


# ---- ZbiCluster --------------------------------------------------------------------------------------------------


class NodeGroupArgs(TypedDict):
    """A managed node group, one per zone; sizes are per zone."""

    instance_types: NotRequired[list[str]]
    """EC2 instance types (default m7i.large)."""
    min_size: NotRequired[int]
    """Fewest nodes per zone."""
    desired_size: NotRequired[int]
    """Nodes per zone at creation."""
    max_size: NotRequired[int]
    """Most nodes per zone."""


class ZbiClusterArgs(TypedDict):
    """An EKS cluster in a VPC's private subnets."""

    name: str
    """The cluster's name."""
    version: NotRequired[str]
    """Kubernetes version EKS offers (default 1.33)."""
    vpc_id: str
    """The VPC."""
    region: str
    """The VPC's region."""
    zone_ids: list[str]
    """The VPC's zones, by ID, in the order of `private_subnet_ids`."""
    private_subnet_ids: list[str]
    """One private subnet per zone, in the order of `zone_ids`."""
    public_subnet_ids: list[str]
    """Public subnets, for load balancers."""
    node_groups: NotRequired[dict[str, NodeGroupArgs]]
    """Node groups by name (default one, `general`)."""


class ZbiCluster(pulumi.ComponentResource):
    """EKS with API authentication, a private endpoint, KMS encryption, IRSA, the VPC CNI and EBS CSI driver on IRSA
    roles, one managed node group per zone and a default encrypted gp3 StorageClass."""

    cluster_name: pulumi.Output[str]
    """The cluster."""
    kubeconfig: pulumi.Output[str]
    """A kubeconfig for the cluster (secret)."""
    ebs_kms_key_arn: pulumi.Output[str]
    """The key encrypting chain volumes."""

    def __init__(self, name: str, args: ZbiClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zbi:index:ZbiCluster", name, {}, opts)
        from zbi_infra.zones import AvailabilityZone

        config = _validated(
            ClusterConfig,
            {"name": args["name"], "version": args.get("version"), "node_groups": args.get("node_groups")},
            "args",
        )
        names = {zone_id: name for name, zone_id in _zone_names(args["region"])}
        zones = [AvailabilityZone(zone_id=z, name=names.get(z, z)) for z in args["zone_ids"]]
        cluster = LibraryCluster(
            name,
            LibraryClusterArgs(
                config=config,
                vpc_id=args["vpc_id"],
                zones=zones,
                private_subnet_ids_by_zone=dict(zip(args["zone_ids"], args["private_subnet_ids"], strict=True)),
                public_subnet_ids=args["public_subnet_ids"],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.cluster_name = cluster.cluster_name
        self.kubeconfig = cluster.kubeconfig
        self.ebs_kms_key_arn = cluster.ebs_kms_key_arn
        self.register_outputs({"clusterName": self.cluster_name, "kubeconfig": self.kubeconfig})


def _zone_names(region: str) -> list[tuple[str, str]]:
    return [(z.name, z.zone_id) for z in lookup_zones(region)]


# ---- ZbiBackups --------------------------------------------------------------------------------------------------


class ZbiBackupsArgs(TypedDict):
    """Scheduled snapshots of a stack's chain volumes, copied to a DR region."""

    stack: str
    """The stack whose volumes (tagged zbi.io/stack) are snapshotted."""
    source_kms_key_arn: str
    """The key of the source volumes."""
    region: str
    """Where the volumes are."""
    dr_region: str
    """Where the copies go."""
    interval_hours: NotRequired[int]
    """Hours between snapshots (1, 2, 3, 4, 6, 8, 12 or 24; default 12)."""


class ZbiBackups(pulumi.ComponentResource):
    """A DLM policy over the chain volumes' tags, with encrypted cross-region copies under a DR-region key."""

    dr_kms_key_arn: pulumi.Output[str]
    """The DR-region key of the copies."""

    def __init__(self, name: str, args: ZbiBackupsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zbi:index:ZbiBackups", name, {}, opts)
        import pulumi_aws as aws

        from zbi_infra.config.recovery import BackupConfig

        backup = _validated(
            BackupConfig, {"interval_hours": args.get("interval_hours"), "dr_region": args["dr_region"]}, "args"
        )
        dr_provider = aws.Provider(
            f"{name}-dr-region", region=backup.dr_region, opts=pulumi.ResourceOptions(parent=self)
        )
        backups = LibraryBackups(
            name,
            LibraryBackupsArgs(
                stack=args["stack"],
                source_kms_key_arn=args["source_kms_key_arn"],
                region=args["region"],
                dr_region=backup.dr_region,
                interval_hours=backup.interval_hours,
            ),
            dr_provider=dr_provider,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.dr_kms_key_arn = backups.dr_kms_key_arn
        self.register_outputs({"drKmsKeyArn": self.dr_kms_key_arn})


COMPONENTS = [ZcashNode, ZbiVpc, ZbiCluster, ZbiBackups]
