"""`zbi:instances.<name>.history`: an instance made for historical chain data (exchanges, analytics). Off by default.

Three parts, each in its own module: an immutable-answer cache at the gateway (config/history_cache.py), full-node
replicas that follow RPC load and start from the newest chain snapshot (config/history_scaling.py), and an export of
the final chain to S3 as Parquet with a Glue catalog and an Athena workgroup (config/history_export.py).
"""

from __future__ import annotations

from pydantic import Field

from zbi_infra.config.base import StrictModel
from zbi_infra.config.history_cache import HistoryCacheConfig
from zbi_infra.config.history_export import HistoryExportConfig
from zbi_infra.config.history_scaling import HistoryScalingConfig

# Zebra finalizes a block once it is MAX_BLOCK_REORG_HEIGHT = 1000 below its tip (zebra-chain constants.rs and
# zebra-state write.rs at v6.3.0, vendored in tests/fixtures/upstream/zebra/rpc-immutable-fields.json; "more than 99"
# was older Zebra's window). Nothing zBI serves from a cache or exports may be shallower than this.
FINAL_DEPTH = 1000


class HistoryConfig(StrictModel):
    """History is served from final blocks only: deeper than Zebra's reorganisation limit below the tip."""

    # Answers about final blocks, served once by the node and then from the gateway's cache.
    cache: HistoryCacheConfig = Field(default_factory=HistoryCacheConfig)
    # Full-node replicas that follow RPC load, restored from the newest chain snapshot.
    scaling: HistoryScalingConfig = Field(default_factory=HistoryScalingConfig)
    # The final chain as Parquet tables in S3, with a Glue catalog and an Athena workgroup.
    export: HistoryExportConfig = Field(default_factory=HistoryExportConfig)
