"""`history.export`: the final chain as Parquet tables in S3, catalogued for Athena (zbi_infra/config/history.py)."""

from __future__ import annotations

from pydantic import Field

from zbi_infra.config.base import StrictBool, StrictInt, StrictModel


class HistoryExportConfig(StrictModel):
    """A CronJob that writes final blocks as Parquet, partitioned by height range."""

    # Export the final chain to S3 as Parquet.
    enabled: StrictBool = False
    # Blocks per partition (one Parquet file per table and height range).
    partition_blocks: StrictInt = Field(default=10_000, ge=100, le=1_000_000)
