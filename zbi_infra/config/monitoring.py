"""`zbi:monitoring`: the monitoring stack of a stack (on unless turned off), and where its alerts go."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from zbi_infra.config.base import StrictBool, StrictInt, StrictModel


class MonitoringConfig(StrictModel):
    enabled: StrictBool = True
    # Prometheus keeps this many days of samples on its own retained, encrypted volume.
    retention_days: StrictInt = Field(default=15, ge=1, le=365)
    storage_gib: StrictInt = Field(default=50, ge=5, le=16384)
    # Amazon Managed Service for Prometheus (or any remote-write endpoint signed with SigV4 in the stack's region).
    remote_write_url: Annotated[str, StringConstraints(pattern=r"^https://[^\s]+$", max_length=2048)] | None = None


# Smaller on a laptop cluster, unless the stack file says otherwise.
LOCAL_DEFAULTS = {"retention_days": 3, "storage_gib": 5}
