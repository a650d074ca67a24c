"""`zbi:monitoring`: the monitoring stack of a stack (on unless turned off), and where its alerts go."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, StringConstraints

from zbi_infra.config.base import StrictBool, StrictInt, StrictModel

AMP_REMOTE_WRITE = (
    r"^https://aps-workspaces\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/workspaces/(?P<workspace>ws-[0-9a-f-]+)"
    r"/api/v1/remote_write$"
)


class MonitoringConfig(StrictModel):
    # Deploy Prometheus and Alertmanager with zBI's alert rules.
    enabled: StrictBool = True
    # Prometheus keeps this many days of samples on its own retained, encrypted volume.
    retention_days: StrictInt = Field(default=15, ge=1, le=365)
    # Prometheus's volume, GiB.
    storage_gib: StrictInt = Field(default=50, ge=5, le=16384)
    # Amazon Managed Service for Prometheus: the workspace's remote-write URL (Prometheus signs with SigV4 through an
    # IRSA role that may write to that workspace only).
    remote_write_url: Annotated[str, StringConstraints(pattern=AMP_REMOTE_WRITE, max_length=2048)] | None = None

    def amp_workspace(self) -> tuple[str, str] | None:
        """(region, workspace ID) of the remote-write URL."""
        match = re.match(AMP_REMOTE_WRITE, self.remote_write_url or "")
        return (match["region"], match["workspace"]) if match else None


# Smaller on a laptop cluster, unless the stack file says otherwise.
LOCAL_DEFAULTS = {"retention_days": 3, "storage_gib": 5}
