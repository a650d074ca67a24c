"""The exported tables: names, columns and partition keys, one definition for the writer (zbi_export/tables.py) and for
the Glue catalog (zbi_infra builds Glue tables from `glue_tables()`). Standard library only: the Pulumi program imports
it without pyarrow.

Conventions (each a claim, docs/history-export.md):
- Hashes (block hash, txid, previous outpoint, nullifiers, commitments) are lowercase hex in the order zebrad's RPC
  shows them: block hashes and txids byte-reversed (as `getblock` prints them), other 32-byte fields in their
  serialized order. Hex strings join and filter in Athena without casts; scripts are hex too (BigQuery's convention).
- Amounts are zatoshi (1 ZEC = 100,000,000) in bigint.
- A value balance is the value a transaction takes OUT of a shielded pool into the transparent value pool, the sign
  the protocol serializes (valueBalanceSapling, valueBalanceOrchard; for Sprout, the sum of vpub_new - vpub_old):
  positive = the pool shrinks, negative = value was shielded.
- Column names avoid SQL keywords (no `index`, `time`, `timestamp`): Athena's DDL and Trino need no quoting.
- Version 6 transactions (NU6.3, Zebra v6.3.0) add an Ironwood bundle laid out like Orchard's: its own table and
  columns.
- Every row carries `height`, so any table joins to `blocks` on it and to `transactions` on (`height`, `txid`).
- Partition: `height_range=<first>-<last>` (each zero-padded to 10 digits, so text order is height order), a fixed
  width of blocks per partition; in it, one `part-<first height>.parquet` per table and fixed run of heights.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 1
PARTITION_KEY = "height_range"
HEIGHT_DIGITS = 10
# How Glue and Athena read the files (Hive's Parquet SerDe and formats).
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"


@dataclass(frozen=True)
class Column:
    name: str
    # Hive/Glue type: bigint, int, string, boolean, timestamp.
    hive_type: str
    comment: str
    nullable: bool = False


def _c(name: str, hive_type: str, comment: str, nullable: bool = False) -> Column:
    return Column(name, hive_type, comment, nullable)


_BLOCK_KEY = [_c("height", "bigint", "block height")]
_TX_KEY = [*_BLOCK_KEY, _c("txid", "string", "transaction id, hex as the RPC shows it")]

_ACTION_COLUMNS = [
    *_TX_KEY,
    _c("action_index", "bigint", "action position in the transaction"),
    _c("cv", "string", "value commitment hex"),
    _c("nullifier", "string", "nullifier hex"),
    _c("rk", "string", "randomized validating key hex"),
    _c("cmx", "string", "note commitment x-coordinate hex"),
    _c("ephemeral_key", "string", "ephemeral public key hex"),
]

TABLES: dict[str, tuple[str, list[Column]]] = {
    "blocks": (
        "One row per block.",
        [
            *_BLOCK_KEY,
            _c("hash", "string", "block hash, hex as the RPC shows it"),
            _c("previous_block_hash", "string", "parent's hash"),
            _c("version", "bigint", "header version"),
            _c("merkle_root", "string", "Merkle root of the transaction ids"),
            _c("block_commitments", "string", "finalsaplingroot / chain history root / block commitments hash"),
            _c("time_unix", "bigint", "header time, Unix seconds"),
            _c("block_timestamp", "timestamp", "header time as a UTC timestamp"),
            _c("bits", "string", "difficulty target, compact form, hex"),
            _c("nonce", "string", "Equihash nonce, hex"),
            _c("size", "bigint", "serialized block size in bytes"),
            _c("transaction_count", "bigint", "transactions in the block"),
            _c("transparent_input_count", "bigint", "transparent inputs, coinbase inputs included"),
            _c("transparent_output_count", "bigint", "transparent outputs"),
            _c("transparent_output_value", "bigint", "sum of transparent output values, zatoshi"),
            _c("joinsplit_count", "bigint", "Sprout JoinSplit descriptions"),
            _c("sapling_spend_count", "bigint", "Sapling spends"),
            _c("sapling_output_count", "bigint", "Sapling outputs"),
            _c("orchard_action_count", "bigint", "Orchard actions"),
            _c("sprout_value_balance", "bigint", "sum of the transactions' Sprout value balances, zatoshi"),
            _c("sapling_value_balance", "bigint", "sum of the transactions' Sapling value balances, zatoshi"),
            _c("orchard_value_balance", "bigint", "sum of the transactions' Orchard value balances, zatoshi"),
            _c("ironwood_action_count", "bigint", "Ironwood actions (v6 transactions, NU6.3)"),
            _c("ironwood_value_balance", "bigint", "sum of the transactions' Ironwood value balances, zatoshi"),
        ],
    ),
    "transactions": (
        "One row per transaction.",
        [
            *_TX_KEY,
            _c("block_hash", "string", "containing block's hash"),
            _c("tx_index", "bigint", "position in the block (0 = coinbase)"),
            _c("version", "bigint", "transaction version (1-6)"),
            _c("overwintered", "boolean", "fOverwintered flag"),
            _c("version_group_id", "string", "nVersionGroupId hex (overwintered transactions)", True),
            _c("consensus_branch_id", "string", "nConsensusBranchId hex (v5, v6)", True),
            _c("lock_time", "bigint", "nLockTime"),
            _c("expiry_height", "bigint", "nExpiryHeight (overwintered transactions)", True),
            _c("size", "bigint", "serialized size in bytes"),
            _c("is_coinbase", "boolean", "the block's coinbase transaction"),
            _c("input_count", "bigint", "transparent inputs"),
            _c("output_count", "bigint", "transparent outputs"),
            _c("output_value", "bigint", "sum of transparent output values, zatoshi"),
            _c("joinsplit_count", "bigint", "Sprout JoinSplit descriptions"),
            _c("sprout_value_balance", "bigint", "sum of vpub_new - vpub_old over JoinSplits, zatoshi"),
            _c("sapling_spend_count", "bigint", "Sapling spends"),
            _c("sapling_output_count", "bigint", "Sapling outputs"),
            _c("sapling_value_balance", "bigint", "valueBalanceSapling, zatoshi"),
            _c("orchard_action_count", "bigint", "Orchard actions"),
            _c("orchard_value_balance", "bigint", "valueBalanceOrchard, zatoshi"),
            _c("orchard_flags", "int", "Orchard flags byte (bit 0 spends enabled, bit 1 outputs enabled)", True),
            _c("orchard_anchor", "string", "Orchard anchor hex", True),
            _c("ironwood_action_count", "bigint", "Ironwood actions (v6 transactions, NU6.3)"),
            _c("ironwood_value_balance", "bigint", "valueBalanceIronwood, zatoshi"),
        ],
    ),
    "transparent_inputs": (
        "One row per transparent input (the coinbase input included). Its value is the spent output's: join "
        "transparent_outputs on (txid, output_index) = (previous_txid, previous_index).",
        [
            *_TX_KEY,
            _c("input_index", "bigint", "input position in the transaction"),
            _c("previous_txid", "string", "spent output's transaction id (all zero for coinbase)"),
            _c("previous_index", "bigint", "spent output's position (4294967295 for coinbase)"),
            _c("script_sig", "string", "unlocking script hex (coinbase data for coinbase)"),
            _c("sequence", "bigint", "nSequence"),
            _c("is_coinbase", "boolean", "the coinbase input"),
        ],
    ),
    "transparent_outputs": (
        "One row per transparent output.",
        [
            *_TX_KEY,
            _c("output_index", "bigint", "output position in the transaction"),
            _c("value", "bigint", "zatoshi"),
            _c("script_pubkey", "string", "locking script hex"),
            _c("script_type", "string", "p2pkh, p2sh, p2pk, multisig, nulldata or nonstandard"),
            _c("address", "string", "t-address for p2pkh and p2sh outputs", True),
        ],
    ),
    "sapling_spends": (
        "One row per Sapling spend.",
        [
            *_TX_KEY,
            _c("spend_index", "bigint", "spend position in the transaction"),
            _c("cv", "string", "value commitment hex"),
            _c("anchor", "string", "note commitment tree root hex"),
            _c("nullifier", "string", "nullifier hex"),
            _c("rk", "string", "randomized validating key hex"),
        ],
    ),
    "sapling_outputs": (
        "One row per Sapling output.",
        [
            *_TX_KEY,
            _c("output_index", "bigint", "output position in the transaction"),
            _c("cv", "string", "value commitment hex"),
            _c("cmu", "string", "note commitment u-coordinate hex"),
            _c("ephemeral_key", "string", "ephemeral public key hex"),
        ],
    ),
    "orchard_actions": ("One row per Orchard action (v5 and v6 transactions).", _ACTION_COLUMNS),
    "ironwood_actions": (
        "One row per Ironwood action (v6 transactions, NU6.3; same fields as Orchard).",
        _ACTION_COLUMNS,
    ),
}


def partition_value(height: int, partition_blocks: int) -> str:
    """The `height_range` value of the partition that holds `height`."""
    first = height - height % partition_blocks
    last = first + partition_blocks - 1
    return f"{first:0{HEIGHT_DIGITS}d}-{last:0{HEIGHT_DIGITS}d}"


def partition_values(partition_blocks: int, up_to_height: int) -> list[str]:
    """Every `height_range` value from height 0 through the partition holding `up_to_height`: for Athena partition
    projection of type `enum` (the key is text, so the `integer` type does not apply), or to register partitions."""
    return [partition_value(first, partition_blocks) for first in range(0, up_to_height + 1, partition_blocks)]


def glue_tables() -> dict[str, dict[str, object]]:
    """Per table: its description, Glue/Hive columns (name, type, comment) in file order, partition keys, location
    under the export's prefix, and Parquet SerDe and formats. The objects live at
    `<prefix>/<table>/height_range=<first>-<last>/part-<first height of the file>.parquet`."""
    return {
        name: {
            "description": description,
            "columns": [{"name": c.name, "type": c.hive_type, "comment": c.comment} for c in columns],
            "partition_keys": [{"name": PARTITION_KEY, "type": "string", "comment": "first-last block heights"}],
            "location": f"{name}/",
            "serde": PARQUET_SERDE,
            "input_format": PARQUET_INPUT_FORMAT,
            "output_format": PARQUET_OUTPUT_FORMAT,
        }
        for name, (description, columns) in TABLES.items()
    }
