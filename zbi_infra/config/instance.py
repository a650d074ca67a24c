"""`zbi:instances.<name>`: one Zcash instance — a full node tier and an optional light-wallet tier."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from zbi_infra.config.base import DnsLabel, StrictModel
from zbi_infra.config.platform import ARN_PRINCIPAL_PATTERN


class Network(StrEnum):
    MAINNET = "mainnet"
    TESTNET = "testnet"
    REGTEST = "regtest"


class NodeKind(StrEnum):
    ZEBRAD = "zebrad"
    ZCASHD = "zcashd"


class LightwalletKind(StrEnum):
    LIGHTWALLETD = "lightwalletd"
    ZAINO = "zaino"
    NONE = "none"


CPU_PATTERN = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"
MEMORY_PATTERN = r"^[0-9]+(Mi|Gi)$"
Cpu = Annotated[str, StringConstraints(pattern=CPU_PATTERN)]
Memory = Annotated[str, StringConstraints(pattern=MEMORY_PATTERN)]


def cpu_millis(value: str) -> int:
    return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)


def memory_mib(value: str) -> int:
    return int(value[:-2]) * (1024 if value.endswith("Gi") else 1)


class ResourcesConfig(StrictModel):
    """Requests are what the scheduler reserves; limits cap a runaway process (memory limit = OOM kill)."""

    cpu: Cpu
    memory: Memory
    cpu_limit: Cpu | None = None
    memory_limit: Memory | None = None

    @field_validator("cpu_limit")
    @classmethod
    def _cpu_limit_not_below_request(cls, limit: str | None, info: ValidationInfo) -> str | None:
        request = info.data.get("cpu")
        if limit and request and cpu_millis(limit) < cpu_millis(request):
            raise ValueError(f"cpuLimit {limit} is below cpu {request}. Fix: raise cpuLimit or lower cpu")
        return limit

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit_not_below_request(cls, limit: str | None, info: ValidationInfo) -> str | None:
        request = info.data.get("memory")
        if limit and request and memory_mib(limit) < memory_mib(request):
            raise ValueError(f"memoryLimit {limit} is below memory {request}. Fix: raise memoryLimit or lower memory")
        return limit

    def limits(self) -> dict[str, str]:
        # Without an explicit limit, CPU may burst to 4x the request; memory is capped at 2x.
        cpu = self.cpu_limit or f"{cpu_millis(self.cpu) * 4}m"
        memory = self.memory_limit or f"{memory_mib(self.memory) * 2}Mi"
        return {"cpu": cpu, "memory": memory}


class ImageConfig(StrictModel):
    """Override the image of a tier, e.g. for a fork; pin a digest for reproducible deploys."""

    repository: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+([._/:-][a-z0-9]+)*$")] | None = None
    tag: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")] | None = None
    digest: Annotated[str, StringConstraints(pattern=r"^sha256:[a-f0-9]{64}$")] | None = None

    @field_validator("tag")
    @classmethod
    def _no_latest(cls, tag: str | None) -> str | None:
        if tag == "latest":
            raise ValueError("'latest' changes under a running node. Fix: pin a version tag or a digest")
        return tag


class StorageConfig(StrictModel):
    """Chain data volume per replica (gp3 on EKS: 3000 IOPS / 125 MiB/s are free, more is billed)."""

    size_gib: int = Field(default=500, ge=10, le=16384)
    iops: int = Field(default=6000, ge=3000, le=16000)
    throughput_mibps: int = Field(default=250, ge=125, le=1000)

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


# Keys zBI itself sets; overriding them would break probes, services or the peer network.
ZEBRAD_MANAGED_KEYS = frozenset(
    {
        "network.network",
        "network.listen_addr",
        "network.initial_mainnet_peers",
        "network.initial_testnet_peers",
        "network.cache_dir",
        "rpc.listen_addr",
        "rpc.enable_cookie_auth",
        "rpc.cookie_dir",
        "state.cache_dir",
        "health.listen_addr",
        "metrics.endpoint_addr",
    }
)
ZCASHD_MANAGED_KEYS = frozenset(
    {
        "testnet",
        "regtest",
        "datadir",
        "conf",
        "port",
        "rpcport",
        "rpcbind",
        "rpcallowip",
        "rpcuser",
        "rpcpassword",
        "rpcauth",
        "server",
        "listen",
        "connect",
        "addnode",
        "printtoconsole",
    }
)
ExtraValue = str | int | float | bool | list[str] | list[int]


class NodeConfig(StrictModel):
    kind: NodeKind = NodeKind.ZEBRAD
    replicas: int = Field(default=2, ge=1, le=10)
    image: ImageConfig = Field(default_factory=ImageConfig)
    resources: ResourcesConfig = Field(default_factory=lambda: ResourcesConfig(cpu="2", memory="8Gi"))
    storage: StorageConfig = Field(default_factory=StorageConfig)
    inbound_p2p: bool = Field(default=False, alias="inboundP2p")
    # Fast bootstrap: new replicas' volumes are created from this EBS snapshot (e.g. the newest DLM snapshot of
    # another instance on the same network) and catch up from there instead of syncing from genesis.
    bootstrap_snapshot_id: Annotated[str, StringConstraints(pattern=r"^snap-[0-9a-f]{8,17}$")] | None = None
    # zebrad: "section.key" -> value (zebrad.toml); zcashd: "option" -> value (zcash.conf).
    extra_options: dict[str, ExtraValue] = Field(default_factory=dict)

    @field_validator("extra_options")
    @classmethod
    def _extra_options_safe(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        kind = info.data.get("kind")
        for key, value in options.items():
            if isinstance(value, str) and ("\n" in value or "\r" in value):
                raise ValueError(f"{key}: a value may not contain a line break")
            if kind is NodeKind.ZEBRAD:
                if not re.match(r"^[a-z_]+(\.[a-z_]+)+$", key):
                    raise ValueError(
                        f"'{key}' is not a zebrad.toml key. "
                        "Fix: write section.key, e.g. sync.download_concurrency_limit"
                    )
                if key in ZEBRAD_MANAGED_KEYS:
                    raise ValueError(f"'{key}' is set by zBI (ports, paths, peers, probes). Fix: remove it")
            elif kind is NodeKind.ZCASHD:
                if not re.match(r"^[a-z][a-z0-9]*$", key):
                    raise ValueError(f"'{key}' is not a zcash.conf option name. Fix: e.g. maxconnections")
                if key in ZCASHD_MANAGED_KEYS:
                    raise ValueError(f"'{key}' is set by zBI (network, RPC, credentials). Fix: remove it")
        return options


class LightwalletConfig(StrictModel):
    kind: LightwalletKind = LightwalletKind.LIGHTWALLETD
    min_replicas: int = Field(default=2, ge=1, le=50)
    max_replicas: int = Field(default=6, ge=1, le=100)
    target_cpu_percent: int = Field(default=70, ge=10, le=95)
    image: ImageConfig = Field(default_factory=ImageConfig)
    resources: ResourcesConfig = Field(default_factory=lambda: ResourcesConfig(cpu="250m", memory="512Mi"))
    cache_size_gib: int = Field(default=40, ge=1, le=4096)

    @field_validator("max_replicas")
    @classmethod
    def _max_not_below_min(cls, maximum: int, info: ValidationInfo) -> int:
        minimum = info.data.get("min_replicas")
        if minimum is not None and maximum < minimum:
            raise ValueError(f"maxReplicas ({maximum}) is below minReplicas ({minimum}). Fix: raise maxReplicas")
        return maximum


Hostname = Annotated[
    str, StringConstraints(pattern=r"^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", max_length=253)
]


class EndpointsConfig(StrictModel):
    """What the outside world may reach. The full node's RPC is never public; it serves the light-wallet tier."""

    public_grpc: bool = False
    hostnames: list[Hostname] = Field(default_factory=list)
    # Networks allowed to reach a public endpoint (NLB source ranges and NetworkPolicy ipBlocks).
    allowed_cidrs: list[str] = Field(default_factory=lambda: ["0.0.0.0/0"])


class InstanceConfig(StrictModel):
    network: Network
    node: NodeConfig = Field(default_factory=NodeConfig)
    lightwallet: LightwalletConfig = Field(default_factory=LightwalletConfig)
    endpoints: EndpointsConfig = Field(default_factory=EndpointsConfig)
    admins: list[Annotated[str, StringConstraints(pattern=ARN_PRINCIPAL_PATTERN)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> InstanceConfig:
        if self.network is Network.REGTEST and self.node.replicas < 2:
            raise ValueError(
                "node.replicas: a regtest instance is an isolated peer network of at least 2 nodes. "
                "Fix: set replicas >= 2"
            )
        if self.network is Network.REGTEST and (self.node.inbound_p2p or self.endpoints.public_grpc):
            raise ValueError("a regtest network is isolated: inboundP2p and publicGrpc must stay false")
        if self.network is Network.REGTEST and self.node.bootstrap_snapshot_id:
            raise ValueError("node.bootstrapSnapshotId: a regtest chain starts empty. Fix: remove it")
        if self.endpoints.public_grpc and self.lightwallet.kind is LightwalletKind.NONE:
            raise ValueError("endpoints.publicGrpc needs a light-wallet server. Fix: set lightwallet.kind")
        return self


InstanceName = Annotated[DnsLabel, StringConstraints(max_length=30)]
