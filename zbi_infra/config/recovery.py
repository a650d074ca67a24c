"""Backups, DNS failover and the disaster-recovery stack's own settings."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from zbi_infra.config.base import AwsRegion, StrictBool, StrictInt, StrictModel


class BackupConfig(StrictModel):
    """`zbi:backup` (primary): scheduled EBS snapshots of chain data, copied to the DR region."""

    # Take scheduled EBS snapshots of every instance's chain data (off: a warning, no copy anywhere).
    enabled: StrictBool = True
    interval_hours: StrictInt = Field(default=12, description="hours between snapshots")
    # DLM: at most 1,000 snapshots retained per schedule.
    retain_count: StrictInt = Field(default=14, ge=1, le=1000)
    # The region snapshots are copied to, where the DR stack restores from.
    dr_region: AwsRegion = "us-west-2"
    # Days each copy is kept in the DR region.
    dr_retain_days: StrictInt = Field(default=7, ge=1, le=365)

    @field_validator("interval_hours")
    @classmethod
    def _dlm_interval(cls, hours: int) -> int:
        # The only intervals Data Lifecycle Manager's create_rule accepts.
        allowed = (1, 2, 3, 4, 6, 8, 12, 24)
        if hours not in allowed:
            raise ValueError(f"{hours} is not a DLM interval. Fix: use one of {', '.join(map(str, allowed))}")
        return hours


class DnsConfig(StrictModel):
    """`zbi:dns`: a Route 53 hosted zone holding the instances' public names; enables failover records."""

    # The Route 53 hosted zone (Z...) that holds the instances' hostnames.
    hosted_zone_id: Annotated[str, StringConstraints(pattern=r"^Z[A-Z0-9]{1,31}$")]
    # TTL of the failover records, seconds: how long resolvers keep the answer after a failover.
    record_ttl: StrictInt = Field(default=60, ge=10, le=3600)
    # Seconds between Route 53 health checks of the primary endpoint: 10 or 30.
    health_check_interval: StrictInt = Field(default=30)

    @field_validator("health_check_interval")
    @classmethod
    def _interval(cls, seconds: int) -> int:
        if seconds not in (10, 30):
            raise ValueError("Route 53 health checks run every 10 or 30 seconds. Fix: use 10 or 30")
        return seconds


class DrConfig(StrictModel):
    """`zbi:dr` (dr role): which primary stack this region protects, and whether it is serving."""

    # A stack name, optionally qualified as project/stack or org/project/stack (never a file path).
    primary_stack: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$")]
    # true: restore every primary instance in this region from its newest snapshot copy and serve.
    activate: StrictBool = False
    # Restore from the newest copied snapshot; without one, an activated instance syncs from genesis.
    require_snapshot: StrictBool = False

    @field_validator("primary_stack")
    @classmethod
    def _not_a_path(cls, name: str) -> str:
        if any(part in (".", "..") for part in name.split("/")) or name.endswith((".yaml", ".yml")):
            raise ValueError(
                f"{name[:60]!r} looks like a file path. Fix: write the primary stack's name, e.g. dev or acme/zbi/dev"
            )
        return name
