"""One export run: from the recorded next height to the last final block, partition by partition.

Finality: zebrad commits a block to its finalized state, where no reorganisation can reach it, once its best
non-finalized chain is longer than MAX_BLOCK_REORG_HEIGHT blocks (zebra-state/src/service/write.rs). That constant was
99 up to Zebra v5.1.1 ("more than 99 below the tip is final") and is 1000 from v5.2.0 (zebra-chain/src/parameters/
constants.rs, "fix(state): increase reorg window to 1000 blocks", #10650) through v6.3.0, the release zBI pins. So the
default is `tip - 1000`: the last height zebrad 6.3.0 has finalized. `--finality-depth` lowers it to no less than 100,
the older rule, for fresher data at the risk of exporting a block zebrad could still roll back.

Every block's parent hash must equal the previous block's hash, and its Merkle root must equal the root of the
transaction ids computed here (or, for v6 transactions, given by the node): a block that fails either check stops the
run before anything of its batch is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from zbi_export.block_format import FormatError, display_hex, merkle_root, read_block
from zbi_export.rpc import NodeRpc
from zbi_export.schema import TABLES, partition_value
from zbi_export.store import ExportState, Store
from zbi_export.tables import ExportedBlock, arrow_schema, arrow_tables
from zbi_export.txid import txid

# zebrad >= 5.2.0 keeps the last 1000 blocks non-finalized: tip - 1000 is its highest finalized height.
FINALITY_DEPTH = 1000
# The floor: Zebra before 5.2.0 finalized blocks more than 99 below the tip.
MIN_FINALITY_DEPTH = 100
log = logging.getLogger("zbi_export")


class ChainMismatchError(RuntimeError):
    """A block does not link to the exported chain, or its contents do not match its header."""


@dataclass(frozen=True)
class Settings:
    network: str
    partition_blocks: int
    batch_blocks: int = 1000
    max_blocks: int | None = None
    start_height: int = 0
    concurrency: int = 4
    finality_depth: int = FINALITY_DEPTH


@dataclass
class RunReport:
    first_height: int | None = None
    last_height: int | None = None
    blocks: int = 0
    block_bytes: int = 0
    parquet_bytes: int = 0
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0


def fetch_block(rpc: NodeRpc, height: int) -> ExportedBlock:
    raw = rpc.raw_block(height)
    try:
        block = read_block(raw)
    except FormatError as error:
        raise ChainMismatchError(f"block {height}: {error}") from error
    ids = [txid(tx) for tx in block.transactions]
    if any(i is None for i in ids):
        given = rpc.txids(height)
        if len(given) != len(ids) or any(i is not None and i != g for i, g in zip(ids, given, strict=True)):
            raise ChainMismatchError(f"block {height}: the node's transaction ids differ from the computed ones")
        ids = list(given)
    txids = [i for i in ids if i is not None]
    if merkle_root(txids) != block.merkle_root:
        raise ChainMismatchError(f"block {height}: transaction ids do not hash to the header's Merkle root")
    return ExportedBlock(height, block, txids)


def _batches(first: int, last: int, settings: Settings) -> list[tuple[int, int]]:
    """[first, last] cut at partition boundaries and every `batch_blocks` blocks."""
    out, start = [], first
    while start <= last:
        partition_end = start - start % settings.partition_blocks + settings.partition_blocks - 1
        end = min(last, partition_end, start + settings.batch_blocks - 1)
        out.append((start, end))
        start = end + 1
    return out


def run(
    rpc: NodeRpc,
    store: Store,
    settings: Settings,
    stop_after_batches: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> RunReport:
    began = time.monotonic()
    report = RunReport()
    state = store.read_state()
    if state is None:
        state = ExportState(settings.start_height, None, settings.network, settings.partition_blocks)
    elif (state.network, state.partition_blocks) != (settings.network, settings.partition_blocks):
        raise ValueError(
            f"the destination holds a {state.network} export with {state.partition_blocks} blocks per partition; "
            f"this run asks for {settings.network} with {settings.partition_blocks}. Fix: use the recorded "
            "settings or another --destination"
        )
    if settings.finality_depth < MIN_FINALITY_DEPTH:
        raise ValueError(
            f"finality depth {settings.finality_depth}: below {MIN_FINALITY_DEPTH}, a block could be reorganised"
        )
    final = rpc.tip_height() - settings.finality_depth
    last = final if settings.max_blocks is None else min(final, state.next_height + settings.max_blocks - 1)
    if last < state.next_height:
        log.info("nothing to export: next height %d, last final height %d", state.next_height, final)
        report.seconds = time.monotonic() - began
        return report
    with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
        for done, (start, end) in enumerate(_batches(state.next_height, last, settings)):
            if stop_after_batches is not None and done >= stop_after_batches:
                break
            blocks = list(pool.map(lambda h: fetch_block(rpc, h), range(start, end + 1)))
            previous = state.last_hash
            for exported in blocks:
                parent = display_hex(exported.block.previous_block_hash)
                if previous is not None and parent != previous:
                    raise ChainMismatchError(
                        f"block {exported.height}: parent {parent} is not the exported block {previous}"
                    )
                previous = display_hex(exported.block.hash)
            report.parquet_bytes += write_batch(store, blocks, start, settings, report.files)
            state = ExportState(end + 1, previous, settings.network, settings.partition_blocks)
            store.write_state(state)
            report.first_height = start if report.first_height is None else report.first_height
            report.last_height = end
            report.blocks += len(blocks)
            report.block_bytes += sum(len(b.block.raw) for b in blocks)
            log.info("exported %d-%d", start, end)
            if on_batch is not None:
                on_batch(start, end)
    report.seconds = time.monotonic() - began
    return report


def write_batch(store: Store, blocks: list[ExportedBlock], start: int, settings: Settings, files: list[str]) -> int:
    """Rewrites every table's file of the batch's partition: the rows below `start` already there, then the batch's."""
    partition = partition_value(start, settings.partition_blocks)
    written = 0
    new = arrow_tables(blocks, settings.network)
    for table in TABLES:
        schema = arrow_schema(table)
        existing = store.existing_rows(table, partition, schema, below=start)
        rows = new[table] if existing is None else pa.concat_tables([existing, new[table]])
        written += store.write_partition(table, partition, rows)
        files.append(store.partition_path(table, partition))
    return written
