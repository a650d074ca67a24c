"""`history.scaling`: full-node replicas of a history instance that follow RPC load (zbi_infra/config/history.py)."""

from __future__ import annotations

from pydantic import Field, model_validator

from zbi_infra.config.base import StrictBool, StrictInt, StrictModel


class HistoryScalingConfig(StrictModel):
    """Floors and ceilings of the full-node replicas an autoscaler may choose between."""

    # Scale the full-node replicas with RPC load.
    enabled: StrictBool = True
    # Never fewer full-node replicas than this.
    min_replicas: StrictInt = Field(default=2, ge=2, le=20)
    # Never more full-node replicas than this.
    max_replicas: StrictInt = Field(default=6, ge=2, le=20)

    @model_validator(mode="after")
    def _ordered(self) -> HistoryScalingConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"maxReplicas ({self.max_replicas}) is below minReplicas ({self.min_replicas}). "
                "Fix: raise maxReplicas or lower minReplicas"
            )
        return self
