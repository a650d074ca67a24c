"""Where the tables go: Parquet objects in S3, one per table and run of heights, and the export's state object.

Layout under `s3://<bucket>/<prefix>/`:
- `<table>/height_range=<first>-<last>/part-<file first height>.parquet` (Hive partitions, zbi_export/schema.py; one
  file per `file_blocks` heights, so a run rewrites at most one file's rows)
- `_export/state.json`: the next height to export, the hash of the last exported block, and the settings the files
  were written with. Written after a run of heights' Parquet files, so a run stopped midway redoes those files.

Credentials: pyarrow's S3 filesystem given no keys uses the AWS SDK for C++'s DefaultAWSCredentialsProviderChain:
environment variables, the shared files, a credential process, web identity (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE,
which EKS injects for IRSA), SSO, the container endpoint, then the instance metadata service (docs/history-export.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from zbi_export.schema import HEIGHT_DIGITS, PARTITION_KEY, SCHEMA_VERSION

STATE_OBJECT = "_export/state.json"
# Deterministic bytes: same rows and same pyarrow version give the same file (no timestamps are written).
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "row_group_size": 1_000_000,
    "use_dictionary": True,
    "write_statistics": True,
}


@dataclass(frozen=True)
class ExportState:
    next_height: int
    last_hash: str | None
    network: str
    partition_blocks: int
    file_blocks: int
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True, indent=1).encode() + b"\n"


def parse_destination(destination: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, prefix without slashes at either end)."""
    if not destination.startswith("s3://"):
        raise ValueError(f"--destination {destination!r}: expected s3://<bucket>/<prefix>")
    bucket, _, prefix = destination[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"--destination {destination!r}: no bucket. Fix: s3://<bucket>/<prefix>")
    return bucket, prefix.strip("/")


class Store:
    def __init__(self, filesystem: pafs.FileSystem, bucket: str, prefix: str) -> None:
        self.fs, self.root = filesystem, f"{bucket}/{prefix}".rstrip("/")

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def partition_path(self, table: str, partition: str, file_first: int) -> str:
        return self.path(f"{table}/{PARTITION_KEY}={partition}/part-{file_first:0{HEIGHT_DIGITS}d}.parquet")

    def _exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == pafs.FileType.File

    def read_state(self) -> ExportState | None:
        path = self.path(STATE_OBJECT)
        if not self._exists(path):
            return None
        with self.fs.open_input_stream(path) as stream:
            return ExportState(**json.loads(stream.read()))

    def write_state(self, state: ExportState) -> None:
        with self.fs.open_output_stream(self.path(STATE_OBJECT)) as stream:
            stream.write(state.to_json())

    def existing_rows(
        self, table: str, partition: str, file_first: int, schema: pa.Schema, below: int
    ) -> pa.Table | None:
        """The rows already exported to this file below height `below` (rows at or above it are from a run that
        stopped before recording its state, and are written again)."""
        path = self.partition_path(table, partition, file_first)
        if not self._exists(path):
            return None
        existing = pq.read_table(path, filesystem=self.fs, schema=schema)
        return existing.filter(pc.less(existing["height"], below))

    def write_partition(self, table: str, partition: str, file_first: int, rows: pa.Table) -> int:
        """Writes the file whole; returns its size in bytes."""
        path = self.partition_path(table, partition, file_first)
        sink = pa.BufferOutputStream()
        pq.write_table(rows.combine_chunks(), sink, **PARQUET_OPTIONS)
        data = sink.getvalue()
        with self.fs.open_output_stream(path) as stream:
            stream.write(data)
        return len(data)


def s3_filesystem(endpoint: str | None, region: str | None) -> pafs.S3FileSystem:
    """pyarrow's S3 client: the default credential chain; an endpoint override for S3-compatible servers."""
    options: dict[str, Any] = {}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        options.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    if region:
        options["region"] = region
    return pafs.S3FileSystem(**options)
