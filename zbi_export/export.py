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
# `getblockchaininfo`'s `chain` for each --network (zebra-chain Network::bip70_network_name, v6.3.0).
CHAIN_NAMES = {"mainnet": "main", "testnet": "test", "regtest": "test"}
log = logging.getLogger("zbi_export")


class ChainMismatchError(RuntimeError):
    """A block does not link to the exported chain, or its contents do not match its header."""


@dataclass(frozen=True)
class Settings:
    network: str
    partition_blocks: int
    # Heights per Parquet file (a divisor of partition_blocks; capped at it): a run rewrites at most one file's worth
    # of rows that were already exported. Part of the layout, recorded in the state.
    file_blocks: int = 1000
    # Blocks fetched and turned into Arrow rows together: bounds the raw blocks held in memory; no effect on the files.
    batch_blocks: int = 100
    max_blocks: int | None = None
    start_height: int = 0
    concurrency: int = 4
    finality_depth: int = FINALITY_DEPTH

    @property
    def blocks_per_file(self) -> int:
        return min(self.file_blocks, self.partition_blocks)

    def problems(self) -> list[str]:
        """What is wrong with these settings, each naming the flag and the fix."""
        found = []
        if self.partition_blocks % self.blocks_per_file:
            found.append(
                f"--file-blocks {self.file_blocks} does not divide --partition-blocks {self.partition_blocks}. "
                "Fix: a divisor of it"
            )
        if self.finality_depth < MIN_FINALITY_DEPTH:
            found.append(
                f"--finality-depth {self.finality_depth}: below {MIN_FINALITY_DEPTH}, a block could be reorganised "
                f"(zebrad 6.3.0 may roll back up to 1000 blocks: only 1000 is final there). Fix: 1000, the default"
            )
        return found


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


def _files(first: int, last: int, blocks_per_file: int) -> list[tuple[int, int]]:
    """[first, last] cut at file boundaries (multiples of `blocks_per_file`, which divides the partition width)."""
    out, start = [], first
    while start <= last:
        end = min(last, start - start % blocks_per_file + blocks_per_file - 1)
        out.append((start, end))
        start = end + 1
    return out


def _state_for(settings: Settings, next_height: int, last_hash: str | None) -> ExportState:
    return ExportState(next_height, last_hash, settings.network, settings.partition_blocks, settings.blocks_per_file)


def run(rpc: NodeRpc, store: Store, settings: Settings) -> RunReport:
    began = time.monotonic()
    report = RunReport()
    problems = settings.problems()
    if problems:
        raise ValueError("; ".join(problems))
    state = store.read_state()
    if state is None:
        state = _state_for(settings, settings.start_height, None)
    recorded = (state.network, state.partition_blocks, state.file_blocks)
    if recorded != (settings.network, settings.partition_blocks, settings.blocks_per_file):
        raise ValueError(
            f"the destination holds a {state.network} export with {state.partition_blocks} blocks per partition and "
            f"{state.file_blocks} per file; this run asks for {settings.network}, {settings.partition_blocks} and "
            f"{settings.blocks_per_file}. Fix: use the recorded settings or another --destination"
        )
    chain, tip = rpc.chain_and_tip()
    if chain != CHAIN_NAMES[settings.network]:
        raise ValueError(
            f"--network {settings.network}, but the node is on chain {chain!r}. Fix: point --rpc-url at a "
            f"{settings.network} node or set --network to the node's"
        )
    final = tip - settings.finality_depth
    last = final if settings.max_blocks is None else min(final, state.next_height + settings.max_blocks - 1)
    if last < state.next_height:
        log.info("nothing to export: next height %d, last final height %d", state.next_height, final)
        report.seconds = time.monotonic() - began
        return report
    with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
        for start, end in _files(state.next_height, last, settings.blocks_per_file):
            parts: list[dict[str, pa.Table]] = []
            previous = state.last_hash
            for first in range(start, end + 1, settings.batch_blocks):
                heights = range(first, min(end, first + settings.batch_blocks - 1) + 1)
                blocks = list(pool.map(lambda h: fetch_block(rpc, h), heights))
                for exported in blocks:
                    parent = display_hex(exported.block.previous_block_hash)
                    if previous is not None and parent != previous:
                        raise ChainMismatchError(
                            f"block {exported.height}: parent {parent} is not the exported block {previous}"
                        )
                    previous = display_hex(exported.block.hash)
                parts.append(arrow_tables(blocks, settings.network))
                report.block_bytes += sum(len(b.block.raw) for b in blocks)
            report.parquet_bytes += write_file(store, parts, start, settings, report.files)
            state = _state_for(settings, end + 1, previous)
            store.write_state(state)
            report.first_height = start if report.first_height is None else report.first_height
            report.last_height = end
            report.blocks += end - start + 1
            log.info("exported %d-%d", start, end)
    report.seconds = time.monotonic() - began
    return report


def write_file(store: Store, parts: list[dict[str, pa.Table]], start: int, settings: Settings, files: list[str]) -> int:
    """Rewrites every table's file holding `start`: the rows below `start` already in it, then the new ones."""
    partition = partition_value(start, settings.partition_blocks)
    file_first = start - start % settings.blocks_per_file
    written = 0
    for table in TABLES:
        schema = arrow_schema(table)
        existing = store.existing_rows(table, partition, file_first, schema, below=start)
        rows = pa.concat_tables(([] if existing is None else [existing]) + [part[table] for part in parts])
        written += store.write_partition(table, partition, file_first, rows)
        files.append(store.partition_path(table, partition, file_first))
    return written
