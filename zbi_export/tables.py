"""Rows of the exported tables (zbi_export/schema.py) from parsed blocks, as Arrow tables with a fixed schema."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from zbi_export.block_format import COINBASE_INDEX, Action, Block, display_hex
from zbi_export.schema import TABLES
from zbi_export.scripts import address, classify

_ARROW_TYPES = {
    "bigint": pa.int64(),
    "int": pa.int32(),
    "string": pa.string(),
    "boolean": pa.bool_(),
    # Parquet has no seconds unit; milliseconds, no time zone (the value is UTC, docs/history-export.md).
    "timestamp": pa.timestamp("ms"),
}


def arrow_schema(table: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.hive_type], nullable=c.nullable) for c in TABLES[table][1]])


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


@dataclass(frozen=True)
class ExportedBlock:
    """A parsed block with its height and the ids of its transactions (internal byte order)."""

    height: int
    block: Block
    txids: list[bytes]


def _action_rows(height: int, txid: str, actions: list[Action]) -> Iterable[dict[str, Any]]:
    for index, a in enumerate(actions):
        yield {
            "height": height,
            "txid": txid,
            "action_index": index,
            "cv": a.cv.hex(),
            "nullifier": a.nullifier.hex(),
            "rk": a.rk.hex(),
            "cmx": a.cmx.hex(),
            "ephemeral_key": a.ephemeral_key.hex(),
        }


def rows(exported: ExportedBlock, network: str) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows for one block."""
    height, block = exported.height, exported.block
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    block_hash = display_hex(block.hash)
    totals = dict.fromkeys(
        [
            "transparent_input_count",
            "transparent_output_count",
            "transparent_output_value",
            "joinsplit_count",
            "sapling_spend_count",
            "sapling_output_count",
            "orchard_action_count",
            "sprout_value_balance",
            "sapling_value_balance",
            "orchard_value_balance",
            "ironwood_action_count",
            "ironwood_value_balance",
        ],
        0,
    )
    for index, (tx, raw_id) in enumerate(zip(block.transactions, exported.txids, strict=True)):
        txid = display_hex(raw_id)
        output_value = sum(o.value for o in tx.outputs)
        counts = {
            "transparent_input_count": len(tx.inputs),
            "transparent_output_count": len(tx.outputs),
            "transparent_output_value": output_value,
            "joinsplit_count": tx.joinsplit_count,
            "sapling_spend_count": len(tx.sapling_spends),
            "sapling_output_count": len(tx.sapling_outputs),
            "orchard_action_count": len(tx.orchard.actions),
            "sprout_value_balance": tx.sprout_value_balance,
            "sapling_value_balance": tx.sapling_value_balance,
            "orchard_value_balance": tx.orchard.value_balance,
            "ironwood_action_count": len(tx.ironwood.actions),
            "ironwood_value_balance": tx.ironwood.value_balance,
        }
        for key, value in counts.items():
            totals[key] += value
        out["transactions"].append(
            {
                "height": height,
                "txid": txid,
                "block_hash": block_hash,
                "tx_index": index,
                "version": tx.version,
                "overwintered": tx.overwintered,
                "version_group_id": None if tx.version_group_id is None else f"{tx.version_group_id:08x}",
                "consensus_branch_id": None if tx.consensus_branch_id is None else f"{tx.consensus_branch_id:08x}",
                "lock_time": tx.lock_time,
                "expiry_height": tx.expiry_height,
                "size": len(tx.raw),
                "is_coinbase": tx.is_coinbase,
                "input_count": len(tx.inputs),
                "output_count": len(tx.outputs),
                "output_value": output_value,
                "joinsplit_count": tx.joinsplit_count,
                "sprout_value_balance": tx.sprout_value_balance,
                "sapling_spend_count": len(tx.sapling_spends),
                "sapling_output_count": len(tx.sapling_outputs),
                "sapling_value_balance": tx.sapling_value_balance,
                "orchard_action_count": len(tx.orchard.actions),
                "orchard_value_balance": tx.orchard.value_balance,
                "orchard_flags": tx.orchard.flags,
                "orchard_anchor": _hex(tx.orchard.anchor),
                "ironwood_action_count": len(tx.ironwood.actions),
                "ironwood_value_balance": tx.ironwood.value_balance,
            }
        )
        for i, txin in enumerate(tx.inputs):
            out["transparent_inputs"].append(
                {
                    "height": height,
                    "txid": txid,
                    "input_index": i,
                    "previous_txid": display_hex(txin.previous_txid),
                    "previous_index": txin.previous_index,
                    "script_sig": txin.script_sig.hex(),
                    "sequence": txin.sequence,
                    "is_coinbase": tx.is_coinbase and txin.previous_index == COINBASE_INDEX,
                }
            )
        for i, txout in enumerate(tx.outputs):
            script_type, hash160 = classify(txout.script_pubkey)
            out["transparent_outputs"].append(
                {
                    "height": height,
                    "txid": txid,
                    "output_index": i,
                    "value": txout.value,
                    "script_pubkey": txout.script_pubkey.hex(),
                    "script_type": script_type,
                    "address": address(script_type, hash160, network),
                }
            )
        for i, spend in enumerate(tx.sapling_spends):
            out["sapling_spends"].append(
                {
                    "height": height,
                    "txid": txid,
                    "spend_index": i,
                    "cv": spend.cv.hex(),
                    "anchor": spend.anchor.hex(),
                    "nullifier": spend.nullifier.hex(),
                    "rk": spend.rk.hex(),
                }
            )
        for i, output in enumerate(tx.sapling_outputs):
            out["sapling_outputs"].append(
                {
                    "height": height,
                    "txid": txid,
                    "output_index": i,
                    "cv": output.cv.hex(),
                    "cmu": output.cmu.hex(),
                    "ephemeral_key": output.ephemeral_key.hex(),
                }
            )
        out["orchard_actions"].extend(_action_rows(height, txid, tx.orchard.actions))
        out["ironwood_actions"].extend(_action_rows(height, txid, tx.ironwood.actions))
    out["blocks"].append(
        {
            "height": height,
            "hash": block_hash,
            "previous_block_hash": display_hex(block.previous_block_hash),
            "version": block.version,
            "merkle_root": display_hex(block.merkle_root),
            "block_commitments": display_hex(block.block_commitments),
            "time_unix": block.time,
            "block_timestamp": block.time * 1000,
            "bits": f"{block.bits:08x}",
            "nonce": display_hex(block.nonce),
            "size": len(block.raw),
            "transaction_count": len(block.transactions),
            **totals,
        }
    )
    return out


def arrow_tables(blocks: list[ExportedBlock], network: str) -> dict[str, pa.Table]:
    """Each table's rows for these blocks, in height then position order."""
    collected: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    for exported in blocks:
        for name, table_rows in rows(exported, network).items():
            collected[name].extend(table_rows)
    return {name: pa.Table.from_pylist(collected[name], schema=arrow_schema(name)) for name in TABLES}
