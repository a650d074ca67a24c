"""The exporter's block reader (zbi_export/block_format.py, txid.py, scripts.py) on real blocks, checked against the
blocks' own commitments (header hash, Merkle root over the transaction ids), against an independent v1-v4 splitter
(tests/zcash_blocks.py) and against zebrad's own decoded answer for Mainnet block 1 (vendored RPC snapshot)."""

from __future__ import annotations

import json

import pytest

from tests import zcash_blocks
from tests.conftest import UPSTREAM
from tests.history_export_harness import BLOCKS, raw_block
from zbi_export.block_format import FormatError, display_hex, merkle_root, read_block
from zbi_export.scripts import address, classify
from zbi_export.txid import txid

ALL_BLOCKS = sorted(p.name for p in BLOCKS.glob("*.bin.xz"))


@pytest.mark.parametrize("name", ALL_BLOCKS)
def test_every_real_block_parses_whole_and_its_ids_hash_to_the_header_merkle_root(name: str) -> None:
    raw = raw_block(name)
    block = read_block(raw)
    ids = [txid(tx) for tx in block.transactions]
    assert all(i is not None for i in ids)
    assert merkle_root([i for i in ids if i is not None]) == block.merkle_root
    assert raw.endswith(b"".join(tx.raw for tx in block.transactions))


@pytest.mark.parametrize("name", sorted(zcash_blocks.VECTORS))
def test_transactions_and_sapling_parts_match_the_independent_v1_v4_splitter(name: str) -> None:
    independent = zcash_blocks.block(name)
    block = read_block(independent.raw)
    assert [tx.raw for tx in block.transactions] == independent.transactions()
    assert display_hex(block.hash) == independent.hash
    for tx in block.transactions:
        sapling = zcash_blocks.Sapling()
        zcash_blocks.transaction_end(zcash_blocks.Reader(tx.raw), sapling)
        assert [s.nullifier for s in tx.sapling_spends] == sapling.spends
        assert [(o.cmu, o.ephemeral_key) for o in tx.sapling_outputs] == [(o[0], o[1]) for o in sapling.outputs]


def test_v5_blocks_carry_orchard_actions_and_value_balances_committed_by_their_ids() -> None:
    # ZIP 244 ids hash every field read here (nullifiers, cmx, flags, value balances, anchors, transparent values):
    # a field read from the wrong offset changes the id and the Merkle root check above fails.
    block = read_block(raw_block("block-main-1-687-107.bin.xz"))
    assert [tx.version for tx in block.transactions].count(5) == 4
    orchard = [tx for tx in block.transactions if tx.orchard.actions]
    assert [len(tx.orchard.actions) for tx in orchard] == [2]
    # "First Sapling to Orchard tx" (Zebra's vector comment): value enters Orchard, leaves Sapling.
    assert orchard[0].orchard.value_balance < 0 < orchard[0].sapling_value_balance
    assert orchard[0].orchard.flags == 0b11


def test_changing_one_value_balance_byte_breaks_the_merkle_root() -> None:
    raw = bytearray(raw_block("block-main-1-687-107.bin.xz"))
    block = read_block(bytes(raw))
    tx = next(t for t in block.transactions if t.orchard.actions)
    start = bytes(raw).index(tx.raw)
    # valueBalanceOrchard follows the last action (820 bytes) and flagsOrchard (1 byte).
    at = start + tx.raw.index(tx.orchard.actions[-1].body) + 820 + 1
    assert int.from_bytes(raw[at : at + 8], "little", signed=True) == tx.orchard.value_balance
    raw[at] ^= 1
    tampered = read_block(bytes(raw))
    ids = [txid(t) for t in tampered.transactions]
    assert merkle_root([i for i in ids if i is not None]) != tampered.merkle_root


@pytest.mark.parametrize("cut", [1, 100, 5000])
def test_a_truncated_block_is_refused(cut: int) -> None:
    raw = raw_block("block-main-1-687-107.bin.xz")
    with pytest.raises(FormatError):
        read_block(raw[:-cut])
    with pytest.raises(FormatError, match="after the last transaction"):
        read_block(raw + b"\0")


def test_block_one_matches_zebrads_own_decoding() -> None:
    answer = json.loads((UPSTREAM / "zebra" / "rpc" / "getblock-verbosity-2-mainnet-1.json").read_text())
    block = read_block(raw_block("block-main-0-000-001.bin.xz"))
    assert display_hex(block.hash) == answer["hash"]
    assert display_hex(block.merkle_root) == answer["merkleroot"]
    assert block.time == answer["time"]
    assert f"{block.bits:08x}" == answer["bits"]
    assert display_hex(block.nonce) == answer["nonce"]
    (tx,) = block.transactions
    (expected,) = answer["tx"]
    assert display_hex(txid(tx) or b"") == expected["txid"]
    assert tx.raw.hex() == expected["hex"]
    assert tx.is_coinbase and tx.inputs[0].script_sig.hex() == expected["vin"][0]["coinbase"]
    zebra_types = {"pubkey": "p2pk", "scripthash": "p2sh", "pubkeyhash": "p2pkh"}
    for output, vout in zip(tx.outputs, expected["vout"], strict=True):
        assert output.value == vout["valueZat"]
        assert output.script_pubkey.hex() == vout["scriptPubKey"]["hex"]
        script_type, hash160 = classify(output.script_pubkey)
        assert script_type == zebra_types[vout["scriptPubKey"]["type"]]
        assert [address(script_type, hash160, "mainnet")] == vout["scriptPubKey"].get("addresses", [None])


def test_script_types() -> None:
    h = bytes(range(20))
    assert classify(bytes([0x76, 0xA9, 20]) + h + bytes([0x88, 0xAC])) == ("p2pkh", h)
    assert classify(bytes([0xA9, 20]) + h + bytes([0x87])) == ("p2sh", h)
    assert classify(bytes([0x6A, 4]) + b"memo")[0] == "nulldata"
    assert classify(bytes([0x51, 33]) + bytes(33) + bytes([0x51, 0xAE]))[0] == "multisig"
    assert classify(bytes([0xA9, 20]) + h + bytes([0x88]))[0] == "nonstandard"
    # Testnet P2PKH addresses start with "tm", Mainnet with "t1".
    assert address("p2pkh", h, "testnet").startswith("tm")
    assert address("p2pkh", h, "mainnet").startswith("t1")
