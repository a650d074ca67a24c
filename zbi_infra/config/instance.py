"""`zbi:instances.<name>`: one Zcash instance — a full node tier and an optional light-wallet tier."""

from __future__ import annotations

import difflib
import math
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from zbi_infra.config.base import DnsLabel, GitHubOwner, StrictBool, StrictInt, StrictModel, listed_twice
from zbi_infra.config.gateway_image import check_gateway_image
from zbi_infra.config.health import ReadinessConfig
from zbi_infra.config.history import HistoryConfig
from zbi_infra.config.image import ImageConfig
from zbi_infra.config.names import MAX_LOAD_BALANCER_SOURCE_RANGES, check_cidrs
from zbi_infra.config.node_options import (
    MAX_EXTRA_OPTIONS,
    ZCASHD_MANAGED_KEYS,
    ZEBRAD_MANAGED_KEYS,
    ZEBRAD_UNSUPPORTED_SECTIONS,
    extra_value_problem,
    zebrad_config_keys,
)
from zbi_infra.config.platform import PrincipalArn
from zbi_infra.config.public_tls import PublicTlsConfig, check_endpoints
from zbi_infra.config.release import SuppliedReleaseConfig
from zbi_infra.config.resources import ResourcesConfig, memory_mib
from zbi_infra.config.zakura import (
    ZAKURAD_MANAGED_KEYS,
    ZAKURAD_UNSUPPORTED_SECTIONS,
    PruningConfig,
    ZcashdCompatConfig,
    zakurad_config_keys,
    zakurad_problem,
)


class Network(StrEnum):
    MAINNET = "mainnet"
    TESTNET = "testnet"
    REGTEST = "regtest"


class NodeKind(StrEnum):
    ZEBRAD = "zebrad"
    ZCASHD = "zcashd"
    ZAKURAD = "zakurad"


class LightwalletKind(StrEnum):
    LIGHTWALLETD = "lightwalletd"
    ZAINO = "zaino"
    NONE = "none"


def max_not_below_min(maximum: int, info: ValidationInfo) -> int:
    """An autoscaled tier's maxReplicas, checked against its minReplicas."""
    minimum = info.data.get("min_replicas")
    if minimum is not None and maximum < minimum:
        raise ValueError(f"maxReplicas ({maximum}) is below minReplicas ({minimum}). Fix: raise maxReplicas")
    return maximum


class StorageConfig(StrictModel):
    """Chain data volume per replica (gp3 on EKS: 3000 IOPS / 125 MiB/s are free, more is billed)."""

    # EBS user guide, "General Purpose SSD volumes": gp3 is 1 GiB-16 TiB, 3,000-16,000 IOPS at most 500 per GiB,
    # 125-1,000 MiB/s at most 0.25 MiB/s per IOPS.
    size_gib: StrictInt = Field(default=500, ge=10, le=16384)
    # Provisioned gp3 IOPS per volume.
    iops: StrictInt = Field(default=6000, ge=3000, le=16000)
    # Provisioned gp3 throughput per volume, MiB/s.
    throughput_mibps: StrictInt = Field(default=250, ge=125, le=1000)

    @field_validator("throughput_mibps")
    @classmethod
    def _throughput_fits_iops(cls, throughput: int, info: ValidationInfo) -> int:
        # gp3 allows at most 0.25 MiB/s per provisioned IOPS.
        iops = info.data.get("iops")
        if iops is not None and throughput > iops // 4:
            raise ValueError(
                f"gp3 allows at most {iops // 4} MiB/s at {iops} IOPS. Fix: raise iops to {throughput * 4}"
            )
        return throughput

    def gp3_problem(self) -> str | None:
        """What EBS would refuse at deploy time (only a gp3 volume has provisioned IOPS)."""
        if self.iops > 500 * self.size_gib:
            return (
                f"gp3 allows at most 500 IOPS per GiB: {self.iops} IOPS need {math.ceil(self.iops / 500)} GiB. "
                f"Fix: raise sizeGib or lower iops to {500 * self.size_gib}"
            )
        return None


class BootstrapArchiveConfig(StrictModel):
    """A published chain-state archive that a new replica's empty volume is filled from (zbi_infra/render/bootstrap.py).

    Resumable and checksum-verified; a volume that already holds data is adopted, never wiped."""

    # HTTPS URL of the archive.
    url: Annotated[str, StringConstraints(pattern=r"^https://[^\s'\"\\]+$", max_length=2048)]
    # The archive's SHA-256: it is verified before a single file is extracted.
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    # Leading path components of the archive to drop, so that its contents land in zebrad's state cache_dir.
    strip_components: StrictInt = Field(default=1, ge=0, le=8)
    # none (a plain tar) or gzip.
    compression: Literal["none", "gzip"] = "none"
    # The archive and its extracted state sit on the chain volume together until extraction ends.
    size_gib: StrictInt = Field(ge=1, le=16384)
    # Size of the extracted state, GiB.
    extracted_size_gib: StrictInt = Field(ge=1, le=16384)


class NodeConfig(StrictModel):
    # The full node implementation: zebrad, zakurad (docs/zakura.md) or zcashd (end of life: regtest only).
    kind: NodeKind = NodeKind.ZEBRAD
    # Full node replicas, spread over zones; 2 or more for HA (1 gets a warning and no PDB).
    replicas: StrictInt = Field(default=2, ge=1, le=10)
    image: ImageConfig = Field(default_factory=ImageConfig)
    resources: ResourcesConfig = Field(default_factory=lambda: ResourcesConfig(cpu="2", memory="8Gi"))
    storage: StorageConfig = Field(default_factory=StorageConfig)
    # true: a LoadBalancer for peer-to-peer traffic (8233 on Mainnet, 18233 on Testnet), so peers can connect in.
    inbound_p2p: StrictBool = Field(default=False, alias="inboundP2p")
    # Fast bootstrap: new replicas' volumes are created from this EBS snapshot (e.g. the newest DLM snapshot of
    # another instance on the same network) and catch up from there instead of syncing from genesis.
    # EC2 snapshot IDs: snap- and 8 (older) or 17 hexadecimal characters.
    bootstrap_snapshot_id: Annotated[str, StringConstraints(pattern=r"^snap-([0-9a-f]{8}|[0-9a-f]{17})$")] | None = None
    # Without a snapshot, a new replica may start from a published archive instead of syncing from genesis.
    bootstrap_archive: BootstrapArchiveConfig | None = None
    # zebrad's /ready thresholds, within bounds; omitted, the network's defaults (zbi_infra/config/health.py).
    readiness: ReadinessConfig | None = None
    # A release zBI's table does not hold yet: its height and date, read from its source (zbi_infra/release_check.py).
    release: SuppliedReleaseConfig | None = None
    # zakurad only (config/zakura.py): prune old transactions, or promise full history to historical-data users.
    pruning: PruningConfig | None = None
    # zakurad: keep every historical transaction for historical-data users (refuses node.pruning).
    archive: StrictBool = False
    zcashd_compat: ZcashdCompatConfig | None = None
    # zebrad: "section.key" -> value (zebrad.toml); zcashd: "option" -> value (zcash.conf).
    extra_options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _room_for_the_archive(self) -> NodeConfig:
        archive = self.bootstrap_archive
        if archive is not None and self.storage.size_gib < archive.size_gib + archive.extracted_size_gib:
            need = archive.size_gib + archive.extracted_size_gib
            raise ValueError(
                f"storage.sizeGib ({self.storage.size_gib}) cannot hold bootstrapArchive's archive ({archive.size_gib} "
                f"GiB) and its extracted state ({archive.extracted_size_gib} GiB) at once. Fix: raise "
                f"storage.sizeGib to at least {need}"
            )
        return self

    @field_validator("extra_options")
    @classmethod
    def _extra_options_safe(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        kind = info.data.get("kind")
        if len(options) > MAX_EXTRA_OPTIONS:
            raise ValueError(f"{len(options)} options. Fix: keep at most {MAX_EXTRA_OPTIONS}")
        for key, value in options.items():
            problem = extra_value_problem(value)
            if problem:
                raise ValueError(f"{key[:60]}: {problem}. Fix: write a number, true/false, a text or a list of them")
            if kind in (NodeKind.ZEBRAD, NodeKind.ZAKURAD):
                zakura = kind is NodeKind.ZAKURAD
                schema = zakurad_config_keys() if zakura else zebrad_config_keys()
                section, _, name = key.partition(".")
                if not re.match(r"^[a-z_]+\.[a-z0-9_]+$", key):
                    raise ValueError(
                        f"{key[:60]!r} is not a {kind.value}.toml key. "
                        "Fix: write section.key (one dot), e.g. sync.download_concurrency_limit"
                    )
                if section in ZEBRAD_UNSUPPORTED_SECTIONS | ZAKURAD_UNSUPPORTED_SECTIONS:
                    raise ValueError(
                        f"[{section}] needs binaries the zBI {kind.value} image does not ship. Fix: remove it"
                    )
                if key in {"health.ready_max_blocks_behind", "health.ready_max_tip_age"}:
                    raise ValueError(f"'{key}' is tuned under node.readiness, within bounds. Fix: move it there")
                if key in ZEBRAD_MANAGED_KEYS or (zakura and key in ZAKURAD_MANAGED_KEYS):
                    raise ValueError(f"'{key}' is set by zBI (ports, paths, peers, probes). Fix: remove it")
                if section not in schema or name not in schema[section]:
                    known = ", ".join(sorted(schema.get(section, schema)))
                    close = difflib.get_close_matches(name if section in schema else section, known.split(", "), 1)
                    hint = f"did you mean {close[0]!r}?" if close else f"known: {known}"
                    raise ValueError(f"{kind.value} rejects {key!r} at start (deny_unknown_fields). Fix: {hint}")
            elif kind is NodeKind.ZCASHD:
                if not re.match(r"^[a-z][a-z0-9]*$", key):
                    raise ValueError(f"'{key}' is not a zcash.conf option name. Fix: e.g. maxconnections")
                if key in ZCASHD_MANAGED_KEYS:
                    raise ValueError(f"'{key}' is set by zBI (network, RPC, credentials). Fix: remove it")
        return options


class LightwalletConfig(StrictModel):
    # lightwalletd, zaino, or none (no light-wallet tier).
    kind: LightwalletKind = LightwalletKind.LIGHTWALLETD
    # Fewest replicas the HPA keeps.
    min_replicas: StrictInt = Field(default=2, ge=1, le=50)
    # Most replicas the HPA scales to.
    max_replicas: StrictInt = Field(default=6, ge=1, le=100)
    # Average CPU (percent of the request) the HPA scales to hold.
    target_cpu_percent: StrictInt = Field(default=70, ge=10, le=95)
    image: ImageConfig = Field(default_factory=ImageConfig)
    resources: ResourcesConfig = Field(default_factory=lambda: ResourcesConfig(cpu="250m", memory="512Mi"))
    # Each replica's own compact-block cache volume, GiB.
    cache_size_gib: StrictInt = Field(default=40, ge=1, le=4096)

    _max_not_below_min = field_validator("max_replicas")(max_not_below_min)


# The gateway's limits that bound its memory per replica, here so that GatewayConfig can check maxBodyKib against
# its memory limit (render/gateway.py renders them, beside the other limits).
# nginx's buffer for a request body (client_body_buffer_size), as a multiple of the largest body accepted. It holds
# a chunked body as framed, so twice the limit reads any body under it sent in chunks of 5 bytes or more with plain
# sizes (the framing is then at most the body's own size, but for the closing chunk of a body within a few bytes
# of the limit); framing larger still is refused in JSON-RPC (gateway.js).
# nginx allocates the whole buffer for a chunked body (for one with a Content-Length, that length at most), and an
# attacker fills it before stalling: the memory a body being read may hold (benchmarks/gateway_load.py measures it).
GATEWAY_BODY_BUFFER_FACTOR = 2
# Anonymous requests a replica admits at once whatever the body budget (render/gateway.py's anonymous_requests_cap).
GATEWAY_MIN_ANONYMOUS_REQUESTS = 8
# Calls (gRPC streams included) one user, or one anonymous address, may have open at once.
GATEWAY_MAX_CALLS_PER_CALLER = 32
# The gateway's scripting engines, each rendered by render/gateway_engines.py.
GatewayEngine = Literal["njs", "lua"]
# Lua: over half of plain nginx proxying's requests per CPU-second, where njs manages a third (the engine's comment).
DEFAULT_GATEWAY_ENGINE: GatewayEngine = "lua"


class GatewayConfig(StrictModel):
    """The access gateway, deployed when the instance has an access file (`access/<instance>.yaml`)."""

    # Two at least: one replica per zone survives a zone or a node going away.
    min_replicas: StrictInt = Field(default=2, ge=2, le=50)
    # Most gateway replicas the HPA scales to.
    max_replicas: StrictInt = Field(default=6, ge=2, le=100)
    # Average CPU (percent of the request) the gateway's HPA scales to hold.
    target_cpu_percent: StrictInt = Field(default=70, ge=10, le=95)
    image: ImageConfig = Field(default_factory=ImageConfig)
    resources: ResourcesConfig = Field(
        default_factory=lambda: ResourcesConfig(cpu="100m", memory="128Mi", memory_limit="256Mi")
    )
    # JSON-RPC bodies above this get HTTP 413; the largest legitimate one is a raw transaction (sendrawtransaction).
    # 40 body buffers of twice this must fit half of resources.memoryLimit: 1638 at most at the default 256Mi.
    max_body_kib: StrictInt = Field(default=256, ge=4, le=10240)
    # The scripting engine that checks keys, allowlists and bodies: lua (lua-nginx-module, in OpenResty's image) or
    # njs (nginx's own, in nginx-unprivileged); an image override names an image of the engine's kind. Same answers;
    # Lua keeps its modules and what it read across requests, where njs starts afresh: authenticated getblockcounts
    # at 0.52-0.62 of plain nginx's requests per CPU-second on Lua, 0.27-0.31 on njs (the images' versions built
    # from their tags; benchmarks/gateway_load.py). njs serves where images must come from nginx.org.
    engine: GatewayEngine = DEFAULT_GATEWAY_ENGINE

    _max_not_below_min = field_validator("max_replicas")(max_not_below_min)

    @model_validator(mode="after")
    def _image_runs_the_engine(self) -> GatewayConfig:
        check_gateway_image(self.engine, self.image, engine_named="engine" in self.model_fields_set)
        return self

    @model_validator(mode="after")
    def _bodies_fit_the_memory_limit(self) -> GatewayConfig:
        """The bodies a replica always admits (anonymous callers at the least, and one caller's calls), each
        stalled with nginx's buffer filled, within half the container's memory limit: the rest is for TLS
        connections, spliced answers and nginx (benchmarks/gateway_load.py measures the slow-body attacks)."""
        held = GATEWAY_MIN_ANONYMOUS_REQUESTS + GATEWAY_MAX_CALLS_PER_CALLER
        per_kib = held * GATEWAY_BODY_BUFFER_FACTOR
        limit_mib = memory_mib(self.resources.limits()["memory"])
        if self.max_body_kib * per_kib > limit_mib * 1024 // 2:
            need_mib = -(-self.max_body_kib * per_kib * 2 // 1024)
            raise ValueError(
                f"maxBodyKib {self.max_body_kib}: {held} bodies in progress ({GATEWAY_MIN_ANONYMOUS_REQUESTS} "
                f"anonymous, {GATEWAY_MAX_CALLS_PER_CALLER} of one caller) may each hold nginx's buffer of "
                f"{GATEWAY_BODY_BUFFER_FACTOR * self.max_body_kib} KiB, over half the memory limit ({limit_mib} MiB). "
                f"Fix: lower maxBodyKib to {limit_mib * 1024 // 2 // per_kib} or less, or raise "
                f"resources.memoryLimit to {need_mib}Mi"
            )
        return self


Hostname = Annotated[
    str, StringConstraints(pattern=r"^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", max_length=253)
]


class EndpointsConfig(StrictModel):
    """What the outside world may reach. The full node's RPC is never public; it serves the light-wallet tier."""

    # Expose the light-wallet gRPC endpoint through a load balancer on 443.
    public_grpc: StrictBool = False
    # Public hostnames: SANs of the server certificate, and Route 53 records when zbi:dns is set.
    hostnames: list[Hostname] = Field(default_factory=list)
    # Networks allowed to reach a public endpoint (NLB source ranges and NetworkPolicy ipBlocks).
    allowed_cidrs: list[str] = Field(default_factory=lambda: ["0.0.0.0/0"])
    # A publicly trusted certificate (ACM or Let's Encrypt) instead of the instance CA's (config/public_tls.py).
    public_tls: PublicTlsConfig | None = None

    @model_validator(mode="after")
    def _public_tls_fits(self) -> EndpointsConfig:
        check_endpoints(self)
        return self

    @field_validator("hostnames")
    @classmethod
    def _hostnames_unique(cls, hostnames: list[str]) -> list[str]:
        twice = listed_twice(hostnames)
        if twice:
            raise ValueError(f"{', '.join(twice)} listed twice. Fix: list each hostname once")
        return hostnames

    @field_validator("allowed_cidrs")
    @classmethod
    def _public_cidrs(cls, cidrs: list[str]) -> list[str]:
        if not cidrs:
            raise ValueError("no network may reach the endpoint. Fix: list client ranges, or 0.0.0.0/0 for everyone")
        return check_cidrs(
            cidrs, public=True, limit=MAX_LOAD_BALANCER_SOURCE_RANGES, what="a load balancer's security group"
        )


class QuotaConfig(StrictModel):
    """The instance namespace's ResourceQuota: its own pods at their largest (HPA maximums, rollout surge), grown by
    the headroom, so that one tenant cannot starve the others and zBI's own pods are always admitted."""

    # Give the instance's namespace a ResourceQuota.
    enabled: StrictBool = True
    # Room above the instance's own largest footprint, percent.
    headroom_percent: StrictInt = Field(default=25, ge=0, le=400)


class InstanceConfig(StrictModel):
    """One instance: a full node, its light-wallet server, and the endpoints, gateway and quota around them."""

    # The Zcash network the instance follows: mainnet, testnet or regtest.
    network: Network
    # The full node: implementation, replicas, image, resources and chain volume.
    node: NodeConfig = Field(default_factory=NodeConfig)
    # The light-wallet server in front of the full node (lightwalletd or Zaino), or none.
    lightwallet: LightwalletConfig = Field(default_factory=LightwalletConfig)
    endpoints: EndpointsConfig = Field(default_factory=EndpointsConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    quota: QuotaConfig = Field(default_factory=QuotaConfig)
    # Historical chain data (exchanges, analytics): a cache of final answers, elastic replicas, a Parquet export.
    history: HistoryConfig | None = None
    # IAM principals who get the zbi-instance-admin Role in this instance's namespace only.
    admins: list[PrincipalArn] = Field(default_factory=list)
    # The instance administrators on GitHub: they own the instance's access file in CODEOWNERS (`zbi roles`).
    owners: list[GitHubOwner] = Field(default_factory=list)
    # Every image of the instance must carry a digest (its image.digest, or the table tools/pin_images.py writes):
    # the `images-pinned-by-digest` guardrail refuses the plan and the deploy otherwise. Recommended on mainnet.
    require_image_digests: StrictBool = False

    @field_validator("admins")
    @classmethod
    def _admins_unique(cls, admins: list[str]) -> list[str]:
        twice = listed_twice(admins)
        if twice:
            raise ValueError(f"{twice[0]} is listed twice (EKS allows one access entry per principal). Fix: keep one")
        return admins

    @model_validator(mode="after")
    def _consistent(self) -> InstanceConfig:
        if self.node.kind is NodeKind.ZCASHD and self.network is not Network.REGTEST:
            raise ValueError(
                f"node.kind: zcashd is end of life: it halted on Mainnet in July 2026, cannot follow NU6.3, and its "
                f"last release (6.20.0) is past its deprecation height. It stays available on regtest only, for "
                f"legacy RPC testing. Fix: use kind zebrad on {self.network.value}"
            )
        zakura = zakurad_problem(self)
        if zakura:
            raise ValueError(zakura)
        if self.network is Network.REGTEST and self.node.replicas < 2:
            raise ValueError(
                "node.replicas: a regtest instance is an isolated peer network of at least 2 nodes. "
                "Fix: set replicas >= 2"
            )
        if self.network is Network.REGTEST and (self.node.inbound_p2p or self.endpoints.public_grpc):
            raise ValueError("a regtest network is isolated: inboundP2p and publicGrpc must stay false")
        if self.network is Network.REGTEST and self.node.bootstrap_snapshot_id:
            raise ValueError("node.bootstrapSnapshotId: a regtest chain starts empty. Fix: remove it")
        if self.network is Network.REGTEST and self.node.bootstrap_archive:
            raise ValueError("node.bootstrapArchive: a regtest chain starts empty. Fix: remove it")
        if self.endpoints.public_grpc and self.lightwallet.kind is LightwalletKind.NONE:
            raise ValueError("endpoints.publicGrpc needs a light-wallet server. Fix: set lightwallet.kind")
        if self.history is not None:
            if self.network is Network.REGTEST:
                raise ValueError("history: a regtest chain is a throwaway test network. Fix: remove history")
            if self.node.pruning is not None:
                raise ValueError(
                    "history serves the whole chain, and node.pruning deletes old transactions. "
                    "Fix: remove node.pruning (and set node.archive: true on zakurad)"
                )
            for problem in self.history.scaling.problems(self.node.replicas):
                raise ValueError(problem)
        return self


InstanceName = Annotated[DnsLabel, StringConstraints(max_length=30)]
