"""`history.scaling`: full-node replicas of a history instance that follow RPC load (zbi_infra/config/history.py).

KEDA scales the full-node StatefulSet between a floor and a ceiling on the node's own RPC request rate; replicas
above the floor start from the newest chain snapshot, which a CronJob keeps current (docs/history-scaling.md).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from zbi_infra.config.base import StrictBool, StrictInt, StrictModel

# A positive, finite rate: strict (a string or a boolean is refused), in blocks per second.
BlocksPerSecond = Annotated[float, Field(strict=True, gt=0.0, le=1000.0, allow_inf_nan=False)]


class HistoryScalingConfig(StrictModel):
    """Floors and ceilings of the full-node replicas an autoscaler may choose between."""

    # Scale the full-node replicas with RPC load.
    enabled: StrictBool = True
    # Never fewer full-node replicas than this (nor than node.replicas): two keep the PodDisruptionBudget's one
    # eviction and the light-wallet tier's upstream served at once.
    min_replicas: StrictInt = Field(default=2, ge=2, le=20)
    # Never more full-node replicas than this.
    max_replicas: StrictInt = Field(default=6, ge=2, le=20)
    # JSON-RPC requests per second one full-node replica should carry; above it, KEDA adds replicas.
    target_requests_per_second: StrictInt = Field(default=50, ge=1, le=100000)
    # A replica is removed only after load has stayed low this long: a new one costs minutes to restore.
    scale_down_window_minutes: StrictInt = Field(default=30, ge=5, le=720)
    # How often the CronJob retakes the snapshot new replicas start from; older means more blocks to catch up.
    snapshot_interval_hours: StrictInt = Field(default=6, ge=1, le=24)
    # EBS fast snapshot restore on that snapshot in every zone: new volumes start fully initialised. Billed per
    # zone-hour (zbi cost prices it); off, new volumes load lazily from S3 on first read.
    fast_snapshot_restore: StrictBool = False
    # The catch-up rate the time-to-serving model assumes (zbi plan shows the model): not measured by zBI. A tenth of
    # the average of Zebra's published mainnet sync (about three days: 13 blocks/s), since blocks past the last
    # checkpoint are fully verified; set it from the "Time from scale-up to ready" panel of your own cluster.
    catch_up_blocks_per_second: BlocksPerSecond = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> HistoryScalingConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"maxReplicas ({self.max_replicas}) is below minReplicas ({self.min_replicas}). "
                "Fix: raise maxReplicas or lower minReplicas"
            )
        return self

    def floor(self, node_replicas: int) -> int:
        """The fewest replicas the autoscaler may keep: the configured floor, or the hand-set count if higher."""
        return max(self.min_replicas, node_replicas)

    def problems(self, node_replicas: int) -> list[str]:
        """What contradicts the instance's own node settings (InstanceConfig calls this)."""
        if self.enabled and self.floor(node_replicas) > self.max_replicas:
            return [
                f"history.scaling.maxReplicas ({self.max_replicas}) is below node.replicas ({node_replicas}), the "
                "floor the autoscaler keeps. Fix: raise history.scaling.maxReplicas or lower node.replicas"
            ]
        return []


def stack_history_problems(instances: dict[str, Any], *, monitoring_enabled: bool, local: bool) -> list[str]:
    """Stack-wide conditions of history scaling: KEDA reads the stack's Prometheus; FSR is an EBS feature."""
    found = []
    for name, instance in sorted(instances.items()):
        scaling = instance.history.scaling if instance.history is not None else None
        if scaling is None or not scaling.enabled:
            continue
        if not monitoring_enabled:
            found.append(
                f"zbi:instances.{name}.history.scaling: the autoscaler reads the node's RPC rate from the stack's "
                "Prometheus, and zbi:monitoring.enabled is false. Fix: enable monitoring, or set "
                "history.scaling.enabled: false"
            )
        if local and scaling.fast_snapshot_restore:
            found.append(
                f"zbi:instances.{name}.history.scaling.fastSnapshotRestore: an EBS feature, and a local stack has "
                "no EBS. Fix: remove it"
            )
    return found
