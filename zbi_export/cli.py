"""`zbi-export`: export the final chain of a zebrad node to S3 as Parquet (docs/history-export.md)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from zbi_export.export import FINALITY_DEPTH, MIN_FINALITY_DEPTH, ChainMismatchError, Settings, run
from zbi_export.rpc import NodeRpc, RpcError
from zbi_export.scripts import PREFIXES
from zbi_export.store import Store, parse_destination, s3_filesystem


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zbi-export", description=__doc__)
    p.add_argument("--rpc-url", required=True, help="the node's JSON-RPC endpoint, e.g. http://zebrad:8232")
    p.add_argument(
        "--rpc-cookie-file",
        type=Path,
        help="a file holding user:password for HTTP basic auth (zebrad's cookie file holds __cookie__:<token>)",
    )
    p.add_argument("--destination", required=True, help="s3://<bucket>/<prefix>")
    p.add_argument("--network", required=True, choices=sorted(PREFIXES), help="the node's network (t-addresses)")
    p.add_argument("--partition-blocks", type=int, default=10_000, help="blocks per height_range partition")
    p.add_argument(
        "--file-blocks", type=int, default=1_000, help="heights per Parquet file, a divisor of --partition-blocks"
    )
    p.add_argument("--batch-blocks", type=int, default=100, help="blocks fetched and converted together (memory)")
    p.add_argument("--max-blocks", type=int, help="stop after this many blocks (a bounded run)")
    p.add_argument("--start-height", type=int, default=0, help="first height of a new export")
    p.add_argument(
        "--finality-depth",
        type=int,
        default=FINALITY_DEPTH,
        help=f"export heights up to tip minus this (default {FINALITY_DEPTH}: zebrad 5.2+ finalizes blocks 1000 below "
        f"the tip; at least {MIN_FINALITY_DEPTH})",
    )
    p.add_argument("--concurrency", type=int, default=4, help="blocks fetched in parallel")
    p.add_argument("--s3-endpoint", help="an S3-compatible endpoint, e.g. http://127.0.0.1:9000 (default: AWS)")
    p.add_argument("--region", default=os.environ.get("AWS_REGION"), help="the bucket's region (default $AWS_REGION)")
    return p


def _bounded(name: str, value: int | None, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise ValueError(f"--{name} {value}: must be between {low} and {high}")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parser().parse_args(argv)
    try:
        _bounded("partition-blocks", args.partition_blocks, 1, 1_000_000)
        _bounded("file-blocks", args.file_blocks, 1, 1_000_000)
        _bounded("batch-blocks", args.batch_blocks, 1, 10_000)
        _bounded("max-blocks", args.max_blocks, 1, 100_000_000)
        _bounded("start-height", args.start_height, 0, 2**31 - 1)
        _bounded("concurrency", args.concurrency, 1, 64)
        _bounded("finality-depth", args.finality_depth, MIN_FINALITY_DEPTH, 100_000)
        bucket, prefix = parse_destination(args.destination)
        credentials = None
        if args.rpc_cookie_file is not None:
            if not args.rpc_cookie_file.is_file():
                raise ValueError(f"--rpc-cookie-file {args.rpc_cookie_file}: no such file")
            credentials = args.rpc_cookie_file.read_text().strip()
        settings = Settings(
            network=args.network,
            partition_blocks=args.partition_blocks,
            file_blocks=args.file_blocks,
            batch_blocks=args.batch_blocks,
            max_blocks=args.max_blocks,
            start_height=args.start_height,
            concurrency=args.concurrency,
            finality_depth=args.finality_depth,
        )
        if settings.problems():
            raise ValueError("; ".join(settings.problems()))
    except ValueError as error:
        print(f"zbi-export: {error}", file=sys.stderr)
        return 2
    store = Store(s3_filesystem(args.s3_endpoint, args.region), bucket, prefix)
    try:
        report = run(NodeRpc(args.rpc_url, credentials), store, settings)
    except ValueError as error:  # recorded settings differ from the flags
        print(f"zbi-export: {error}", file=sys.stderr)
        return 2
    except (RpcError, ChainMismatchError) as error:
        print(f"zbi-export: {error}", file=sys.stderr)
        return 1
    rate = report.blocks / report.seconds if report.seconds else 0.0
    print(
        f"exported {report.blocks} blocks ({report.first_height}-{report.last_height}) in {report.seconds:.1f} s, "
        f"{rate:.1f} blocks/s, {report.parquet_bytes} Parquet bytes written"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
