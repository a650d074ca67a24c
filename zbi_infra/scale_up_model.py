"""How long a new full-node replica of a history instance takes to serve, from the load that asks for it.

A pure model: each term says where its number comes from (`Term.basis`): "published" (a vendor's documentation or
Zebra's source, vendored under tests/fixtures/upstream/), "setting" (a value zBI renders), or "assumed" (no published
figure; the operator can measure it on the "Time from scale-up to ready" dashboard panel and tune it). `zbi plan`
prints the terms, the HistoryScaleUpSlow alert fires past the modelled total, and docs/history-scaling.md explains
each one.

The sequence: KEDA polls Prometheus, the HPA acts on its next sync; a node is added if none has room; the PVC is
created from the newest snapshot (EBS creates the volume at once and loads blocks from S3 on first read, unless fast
snapshot restore initialised it); zebrad opens its state (cold reads) and catches up from peers the blocks mined
since the snapshot, and during all of the above, until it is within its readiness threshold of the tip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# ZIP 208: the post-Blossom target spacing (zebra-chain POST_BLOSSOM_POW_TARGET_SPACING).
BLOCK_SPACING_SECONDS = 75
# AWS, "Amazon EBS fast snapshot restore" (tests/fixtures/upstream/aws/ebs-fast-snapshot-restore.json): optimising
# takes 60 minutes per TiB of snapshot; the credit bucket fills at MIN(10, 1024 / size GiB) per hour up to
# MAX(1, MIN(10, 1024 / size GiB)), starting empty, one credit per volume.
FSR_OPTIMIZE_SECONDS_PER_TIB = 3600
FSR_MAX_CREDITS = 10.0
# AWS, gp3: 125 MiB/s baseline throughput (tests/fixtures/upstream/aws/gp3-limits.json).
GP3_BASELINE_MIBPS = 125
# zBI's settings: KEDA's polling interval (monitoring/keda.py), the rate window of the scaler's query, the HPA
# controller's sync period (kube-controller-manager --horizontal-pod-autoscaler-sync-period default), zebrad's
# readiness probe period (node/full_node_containers.py).
KEDA_POLLING_SECONDS = 30
RATE_WINDOW_SECONDS = 120
HPA_SYNC_SECONDS = 15
READINESS_PERIOD_SECONDS = 15
# No published figure: an EC2 instance launched by the Cluster Autoscaler and joined as a node; an EBS volume created
# from a snapshot and attached; what zebrad reads to open its state and verify the catch-up blocks; how fast a
# lazily loaded volume returns blocks it has not read before; how long a rotation takes (below).
NODE_PROVISION_SECONDS = 240
# The rotation's own duration: `-next` (the change since the last rotation), then `-newest` (minutes of change); the
# newest snapshot a claim can find is up to one interval plus this old. EBS publishes no snapshot duration.
ROTATION_SECONDS = 900
VOLUME_CREATE_ATTACH_SECONDS = 60
COLD_READ_GIB = 5.0
LAZY_LOAD_MIBPS = 40.0


@dataclass(frozen=True)
class Term:
    name: str
    seconds: float
    basis: str  # "published", "setting" or "assumed"
    note: str


@dataclass(frozen=True)
class ScaleUpInputs:
    volume_gib: int
    snapshot_interval_hours: int
    catch_up_blocks_per_second: float
    fast_snapshot_restore: bool
    # zebrad's /ready threshold: a replica this close to the tip serves (config/health.py).
    ready_max_blocks_behind: int = 10
    throughput_mibps: int = GP3_BASELINE_MIBPS
    # False when a node with room is already there (the cluster keeps spare capacity).
    needs_new_node: bool = True

    def __post_init__(self) -> None:
        if self.catch_up_blocks_per_second <= 1 / BLOCK_SPACING_SECONDS:
            raise ValueError(
                f"catch_up_blocks_per_second {self.catch_up_blocks_per_second} is not above the chain's own rate "
                f"(1/{BLOCK_SPACING_SECONDS} per second): a replica would never catch up"
            )
        if self.volume_gib <= 0 or self.snapshot_interval_hours <= 0 or self.throughput_mibps <= 0:
            raise ValueError("volume_gib, snapshot_interval_hours and throughput_mibps must be above 0")


@dataclass(frozen=True)
class ScaleUpEstimate:
    terms: tuple[Term, ...]
    # Blocks the new replica has to fetch at the worst moment (a snapshot just about to be retaken).
    blocks_behind: int

    @property
    def serving_seconds(self) -> float:
        return sum(term.seconds for term in self.terms)

    def term(self, name: str) -> Term:
        (found,) = [term for term in self.terms if term.name == name]
        return found


def fsr_fill_per_hour(snapshot_gib: float) -> float:
    return min(FSR_MAX_CREDITS, 1024 / snapshot_gib)


def fsr_bucket(snapshot_gib: float) -> float:
    return max(1.0, min(FSR_MAX_CREDITS, 1024 / snapshot_gib))


def fsr_volumes_at_once(snapshot_gib: float) -> int:
    """Initialised volumes one zone can create at once from a full bucket; more start lazily loaded."""
    return math.floor(fsr_bucket(snapshot_gib))


def fsr_first_credit_seconds(snapshot_gib: float) -> float:
    """After a snapshot is retaken: optimising it, then the first credit of an empty bucket. Until then, new volumes
    load lazily even with fast snapshot restore."""
    optimise = FSR_OPTIMIZE_SECONDS_PER_TIB * snapshot_gib / 1024
    return optimise + 3600 / fsr_fill_per_hour(snapshot_gib)


def hydration_seconds(used_gib: float, throughput_mibps: int) -> float:
    """Reading every used block once at the volume's throughput: the soonest a lazily loaded volume is whole (AWS's
    manual initialisation). zBI does not force it; reads of blocks not yet loaded are slower until then."""
    return used_gib * 1024 / throughput_mibps


def scale_up(inputs: ScaleUpInputs) -> ScaleUpEstimate:
    """The time from load crossing the target to a replica in the RPC Service, at the worst snapshot age."""
    detect = RATE_WINDOW_SECONDS + KEDA_POLLING_SECONDS + HPA_SYNC_SECONDS
    provision = NODE_PROVISION_SECONDS if inputs.needs_new_node else 0
    # An initialised volume reads at its provisioned throughput (FSR's full benefit holds up to 1,000 MiB/s).
    read_mibps = inputs.throughput_mibps if inputs.fast_snapshot_restore else None
    cold = COLD_READ_GIB * 1024 / (read_mibps or LAZY_LOAD_MIBPS)
    before_sync = detect + provision + VOLUME_CREATE_ATTACH_SECONDS + cold
    # The snapshot is up to one interval (and a rotation) old; blocks keep coming while the replica starts and while
    # it catches up.
    age = inputs.snapshot_interval_hours * 3600 + ROTATION_SECONDS + before_sync
    blocks = max(0, math.ceil(age / BLOCK_SPACING_SECONDS) - inputs.ready_max_blocks_behind)
    net_rate = inputs.catch_up_blocks_per_second - 1 / BLOCK_SPACING_SECONDS
    catch_up = blocks / net_rate
    terms = (
        Term("detect", detect, "setting", "rate window + KEDA polling + HPA sync"),
        Term("node", provision, "assumed", "a new EC2 node joins (0 with spare room)"),
        Term("volume", VOLUME_CREATE_ATTACH_SECONDS, "assumed", "EBS volume from the snapshot, attached"),
        Term(
            "cold reads",
            cold,
            "assumed",
            f"{COLD_READ_GIB:g} GiB to open the state, at "
            + (f"{read_mibps} MiB/s (initialised by FSR)" if read_mibps else f"{LAZY_LOAD_MIBPS:g} MiB/s lazy load"),
        ),
        Term(
            "catch-up",
            catch_up,
            "assumed",
            f"{blocks} blocks (a snapshot {inputs.snapshot_interval_hours} h + a {ROTATION_SECONDS // 60} min rotation "
            f"old) at {inputs.catch_up_blocks_per_second:g}/s net of new 75 s blocks",
        ),
        Term("readiness", READINESS_PERIOD_SECONDS, "setting", "the /ready probe's period"),
    )
    return ScaleUpEstimate(terms=terms, blocks_behind=blocks)
