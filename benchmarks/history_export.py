#!/usr/bin/env python3
"""The history export job's throughput on real blocks (Zebra's vectors, vendored under tests/fixtures/upstream):
blocks per second and bytes per block for each stage side by side (fetch over a loopback JSON-RPC server, parse and
transaction ids, Arrow rows, Parquet encoding, S3 upload to moto's server) and end to end, for three kinds of block.
Prints numbers; asserts nothing.

    python3 -m uv run python benchmarks/history_export.py [--blocks 200] [--concurrency 4]

Each workload repeats one real block `--blocks` times under consecutive heights (the stages below the run loop do not
check parent links, so a repeated block is a fair unit of work). The real run loop (zbi_export.export.run, with its
link checks) is timed on the linked NU5 blocks at the end. Mainnet's blocks are mostly far smaller than the 1.9 MB
Testnet block and far larger than block 2; the mix decides real throughput: multiply each kind's seconds per block
by its share of the chain.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tests.history_export_harness import FakeZebra, moto_s3, raw_block, segment, serve_rpc
from zbi_export.block_format import merkle_root, read_block
from zbi_export.export import Settings, fetch_block, run
from zbi_export.rpc import NodeRpc
from zbi_export.store import PARQUET_OPTIONS, Store, s3_filesystem
from zbi_export.tables import arrow_tables
from zbi_export.txid import txid

KINDS = {
    "Mainnet 2 (v1, genesis era)": "block-main-0-000-002.bin.xz",
    "Mainnet 1,046,401 (47 v4 txs, Canopy)": "block-main-1-046-401.bin.xz",
    "Mainnet 1,687,107 (v4+v5, Orchard)": "block-main-1-687-107.bin.xz",
    "Testnet 141,042 (1.9 MB, 20 JoinSplits)": "block-test-0-141-042.bin.xz",
}


def _parquet_size(tables: dict[str, pa.Table]) -> int:
    total = 0
    for data in tables.values():
        sink = pa.BufferOutputStream()
        pq.write_table(data.combine_chunks(), sink, **PARQUET_OPTIONS)
        total += len(sink.getvalue())
    return total


def measure(name: str, file: str, count: int, concurrency: int, endpoint: str) -> dict[str, float]:
    raw = raw_block(file)
    blocks = {h: raw for h in range(count)}
    fs = s3_filesystem(endpoint, "us-east-1")
    with serve_rpc(FakeZebra(blocks, tip=count + 100)) as url:
        rpc = NodeRpc(url)
        began = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(rpc.raw_block, range(count)))
        fetch = time.perf_counter() - began
        began = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            exported = list(pool.map(lambda h: fetch_block(rpc, h), range(count)))
        fetch_parse = time.perf_counter() - began
    began = time.perf_counter()
    for _ in range(count):
        block = read_block(raw)
        merkle_root([i for i in (txid(t) for t in block.transactions) if i is not None])
    parse = time.perf_counter() - began
    began = time.perf_counter()
    tables = arrow_tables(exported, "mainnet")
    rows = time.perf_counter() - began
    began = time.perf_counter()
    encoded = {}
    for table, data in tables.items():
        sink = pa.BufferOutputStream()
        pq.write_table(data.combine_chunks(), sink, **PARQUET_OPTIONS)
        encoded[table] = sink.getvalue()
    encode = time.perf_counter() - began
    began = time.perf_counter()
    for table, data in encoded.items():
        with fs.open_output_stream(f"bench/{name[:12].replace(' ', '-')}/{table}.parquet") as stream:
            stream.write(data)
    upload = time.perf_counter() - began
    # Bounds on Parquet bytes per block: copies of one block compress unrealistically well (a lower bound); one
    # block's files minus the same files empty keep every column chunk's own overhead (an upper bound).
    repeated = sum(len(b) for b in encoded.values()) / count
    alone = _parquet_size(arrow_tables(exported[:1], "mainnet")) - _parquet_size(arrow_tables([], "mainnet"))
    return {
        "fetch": count / fetch,
        "parse": count / parse,
        "rows": count / rows,
        "encode": count / encode,
        "upload": count / upload,
        "total": count / (fetch_parse + rows + encode + upload),
        "raw_bytes": len(raw),
        "repeated": repeated,
        "alone": alone,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, pyarrow {pa.__version__}, {os.cpu_count()} CPUs, {args.blocks} blocks")
    print(
        f"blocks/s per stage: fetch (RPC, {args.concurrency} parallel), parse (ids and Merkle root, one thread), rows, "
        "Parquet encode, S3 upload (moto); total = fetch+parse in parallel, then rows, encode, upload"
    )
    print(
        "bytes per block: the block's; its rows in Parquet (zstd) between two bounds: as one of N copies (low) and "
        "alone, minus empty files (high)"
    )
    header = f"{'block':42} {'fetch':>8} {'parse':>8} {'rows':>8} {'encode':>8} {'upload':>8} {'total':>8}"
    print(header + f" {'B/block':>9} {'Parquet low':>12} {'Parquet high':>13}")
    with moto_s3() as endpoint:
        host = endpoint.removeprefix("http://")
        pafs.S3FileSystem(endpoint_override=host, scheme="http", allow_bucket_creation=True).create_dir("bench")
        for name, file in KINDS.items():
            count = args.blocks if "141,042" not in name else max(4, args.blocks // 20)
            m = measure(name, file, count, args.concurrency, endpoint)
            stages = " ".join(f"{m[k]:8.1f}" for k in ("fetch", "parse", "rows", "encode", "upload", "total"))
            print(f"{name:42} {stages} {m['raw_bytes']:9.0f} {m['repeated']:12.0f} {m['alone']:13.0f}")
        blocks = segment("nu5")
        store = Store(s3_filesystem(endpoint, "us-east-1"), "bench", "run")
        with serve_rpc(FakeZebra(blocks, max(blocks) + 100)) as url:
            report = run(NodeRpc(url), store, Settings("mainnet", 10_000, start_height=min(blocks), finality_depth=100))
        print(
            f"run loop, linked NU5 blocks 1,687,106-1,687,108: {report.blocks / report.seconds:.1f} blocks/s, "
            f"{report.block_bytes / report.blocks:.0f} B/block in, {report.parquet_bytes / report.blocks:.0f} "
            "Parquet B/block out (the 8 files' fixed overhead dominates at 3 blocks)"
        )


if __name__ == "__main__":
    main()
