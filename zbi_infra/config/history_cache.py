"""`history.cache`: the gateway's cache of answers about final blocks (zbi_infra/config/history.py)."""

from __future__ import annotations

from pydantic import Field

from zbi_infra.config.base import StrictBool, StrictInt, StrictModel


class HistoryCacheConfig(StrictModel):
    """Answers that can never change once their block is final, kept by the gateway."""

    # Serve final-block answers from the gateway's cache.
    enabled: StrictBool = True
    # Size of each gateway replica's cache volume, GiB.
    size_gib: StrictInt = Field(default=20, ge=1, le=1024)
