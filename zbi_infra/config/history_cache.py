"""`history.cache`: the gateway's cache of answers about final blocks (zbi_infra/config/history.py)."""

from __future__ import annotations

from pydantic import Field

from zbi_infra.config.base import StrictBool, StrictInt, StrictModel


class HistoryCacheConfig(StrictModel):
    """Answers that can never change once their block is final, kept by the gateway."""

    # Serve final-block answers from the gateway's cache.
    enabled: StrictBool = True
    # Size of each gateway replica's cache volume, GiB.
    # nginx may fill 85% of it (its cache manager evicts after the fact, and fills write temporary files there).
    size_gib: StrictInt = Field(default=20, ge=1, le=1024)
    # Shared memory for the cache's keys, MiB, added to the nginx container's memory request and limit: one MiB holds
    # about 8,000 entries (nginx's proxy_cache_path); when it is full the least recently used entries go.
    keys_zone_mib: StrictInt = Field(default=32, ge=1, le=256)
    # Misses each gateway replica fills at once: a fill reads the node's answer whole (up to 4 MiB) to find what
    # changes with the tip, holding up to 24 MiB, added to the nginx container's memory request and limit. Misses
    # beyond it at the same moment are forwarded to the node uncached (answered in full, stored by a later call).
    fills_at_once: StrictInt = Field(default=4, ge=1, le=64)
    # Entries nobody asked for in this many days are removed, however much room is left.
    inactive_days: StrictInt = Field(default=30, ge=1, le=365)
