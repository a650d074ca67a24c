"""The Zcash block and transaction encoding, read from raw bytes (what `getblock <height> 0` returns as hex).

Written from the protocol specification (§7.1 "Transaction Encoding and Consensus", §7.6 "Block Header Encoding",
https://zips.z.cash/protocol/protocol.pdf) and ZIP 225 (v5), and checked against Zebra's reader at v6.3.0
(zebra-chain/src/transaction/serialize.rs, zebra-chain/src/block/serialize.rs), which also defines the v6 layout
(NU6.3: the v5 fields plus an Ironwood bundle laid out like Orchard's). Only the fields the exported tables need are
kept; proofs, signatures and note ciphertexts are skipped by their sizes.

Transaction ids are computed in zbi_export/txid.py.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

HEADER_FIXED_BYTES = 4 + 32 + 32 + 32 + 4 + 4 + 32  # version .. nonce, before the Equihash solution
COINBASE_PREVOUT = bytes(32)
COINBASE_INDEX = 0xFFFFFFFF
# Sizes skipped whole (protocol spec §7.1-§7.5).
V4_SPEND_BYTES = 32 + 32 + 32 + 32 + 192 + 64  # cv, anchor, nullifier, rk, zkproof, spendAuthSig
V4_OUTPUT_BYTES = 32 + 32 + 32 + 580 + 80 + 192  # cv, cmu, ephemeralKey, encCiphertext, outCiphertext, zkproof
V5_SPEND_PREFIX_BYTES = 32 + 32 + 32  # cv, nullifier, rk
V5_OUTPUT_PREFIX_BYTES = 32 + 32 + 32 + 580 + 80  # cv, cmu, ephemeralKey, encCiphertext, outCiphertext
ACTION_BYTES = 32 + 32 + 32 + 32 + 32 + 580 + 80  # cv, nullifier, rk, cmx, ephemeralKey, encCiphertext, outCiphertext
GROTH16_PROOF_BYTES = 192
SIGNATURE_BYTES = 64
# JoinSplit: vpub_old, vpub_new, then anchor, 2 nullifiers, 2 commitments, ephemeralKey, randomSeed, 2 vmacs, the
# proof (BCTV14 296 bytes before Sapling, Groth16 192 from v4), 2 ciphertexts of 601 bytes.
JOINSPLIT_FIXED_BYTES = 32 + 64 + 64 + 32 + 32 + 64 + 2 * 601
BCTV14_PROOF_BYTES = 296


class FormatError(ValueError):
    """The bytes are not a block or transaction this reader understands."""


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def display_hex(internal: bytes) -> str:
    """A hash as the RPC prints it: byte-reversed hex."""
    return internal[::-1].hex()


class Reader:
    __slots__ = ("at", "data")

    def __init__(self, data: bytes, at: int = 0) -> None:
        self.data, self.at = data, at

    def take(self, size: int) -> bytes:
        end = self.at + size
        if size < 0 or end > len(self.data):
            raise FormatError(f"truncated at byte {self.at}: {size} more bytes expected")
        chunk = self.data[self.at : end]
        self.at = end
        return chunk

    def skip(self, size: int) -> None:
        if size < 0 or self.at + size > len(self.data):
            raise FormatError(f"truncated at byte {self.at}: {size} more bytes expected")
        self.at += size

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return int(struct.unpack_from("<I", self.take(4))[0])

    def i64(self) -> int:
        return int(struct.unpack_from("<q", self.take(8))[0])

    def compact(self) -> int:
        first = self.u8()
        if first < 0xFD:
            return first
        return int.from_bytes(self.take({0xFD: 2, 0xFE: 4, 0xFF: 8}[first]), "little")


@dataclass(frozen=True)
class TransparentInput:
    previous_txid: bytes  # internal byte order
    previous_index: int
    script_sig: bytes
    sequence: int


@dataclass(frozen=True)
class TransparentOutput:
    value: int
    script_pubkey: bytes


@dataclass(frozen=True)
class SaplingSpend:
    cv: bytes
    anchor: bytes
    nullifier: bytes
    rk: bytes


@dataclass(frozen=True)
class SaplingOutput:
    cv: bytes
    cmu: bytes
    ephemeral_key: bytes
    # cv, cmu, ephemeralKey, encCiphertext, outCiphertext: what ZIP 244 hashes (zbi_export/txid.py).
    body: bytes


@dataclass(frozen=True)
class Action:
    cv: bytes
    nullifier: bytes
    rk: bytes
    cmx: bytes
    ephemeral_key: bytes
    # The whole action description: what ZIP 244 hashes (zbi_export/txid.py).
    body: bytes


@dataclass
class ActionBundle:
    """An Orchard (v5, v6) or Ironwood (v6) bundle: same encoding."""

    actions: list[Action] = field(default_factory=list)
    flags: int | None = None
    value_balance: int = 0
    anchor: bytes | None = None


@dataclass
class Transaction:
    raw: bytes
    version: int
    overwintered: bool
    version_group_id: int | None = None
    consensus_branch_id: int | None = None
    lock_time: int = 0
    expiry_height: int | None = None
    inputs: list[TransparentInput] = field(default_factory=list)
    outputs: list[TransparentOutput] = field(default_factory=list)
    joinsplit_count: int = 0
    sprout_value_balance: int = 0
    sapling_value_balance: int = 0
    sapling_spends: list[SaplingSpend] = field(default_factory=list)
    sapling_outputs: list[SaplingOutput] = field(default_factory=list)
    orchard: ActionBundle = field(default_factory=ActionBundle)
    ironwood: ActionBundle = field(default_factory=ActionBundle)

    @property
    def is_coinbase(self) -> bool:
        return (
            len(self.inputs) == 1
            and self.inputs[0].previous_txid == COINBASE_PREVOUT
            and self.inputs[0].previous_index == COINBASE_INDEX
        )


@dataclass
class Block:
    raw: bytes
    version: int
    previous_block_hash: bytes
    merkle_root: bytes
    block_commitments: bytes
    time: int
    bits: int
    nonce: bytes
    header_end: int
    transactions: list[Transaction]

    @property
    def hash(self) -> bytes:
        return sha256d(self.raw[: self.header_end])


def _transparent(reader: Reader, tx: Transaction) -> None:
    for _ in range(reader.compact()):
        previous_txid = reader.take(32)
        previous_index = reader.u32()
        script = reader.take(reader.compact())
        tx.inputs.append(TransparentInput(previous_txid, previous_index, script, reader.u32()))
    for _ in range(reader.compact()):
        value = reader.i64()
        tx.outputs.append(TransparentOutput(value, reader.take(reader.compact())))


def _joinsplits(reader: Reader, tx: Transaction, groth16: bool) -> None:
    count = reader.compact()
    proof = GROTH16_PROOF_BYTES if groth16 else BCTV14_PROOF_BYTES
    for _ in range(count):
        vpub_old, vpub_new = struct.unpack_from("<QQ", reader.take(16))
        tx.sprout_value_balance += vpub_new - vpub_old
        reader.skip(JOINSPLIT_FIXED_BYTES + proof)
    tx.joinsplit_count = count
    if count:
        reader.skip(32 + SIGNATURE_BYTES)  # joinSplitPubKey, joinSplitSig


def _v4_sapling(reader: Reader, tx: Transaction) -> None:
    tx.sapling_value_balance = reader.i64()
    for _ in range(reader.compact()):
        spend = reader.take(V4_SPEND_BYTES)
        tx.sapling_spends.append(SaplingSpend(spend[0:32], spend[32:64], spend[64:96], spend[96:128]))
    for _ in range(reader.compact()):
        output = reader.take(V4_OUTPUT_BYTES)
        tx.sapling_outputs.append(SaplingOutput(output[0:32], output[32:64], output[64:96], output[:756]))


def _v5_sapling(reader: Reader, tx: Transaction) -> None:
    prefixes = [reader.take(V5_SPEND_PREFIX_BYTES) for _ in range(reader.compact())]
    outputs = [reader.take(V5_OUTPUT_PREFIX_BYTES) for _ in range(reader.compact())]
    if not prefixes and not outputs:
        return
    tx.sapling_value_balance = reader.i64()
    anchor = reader.take(32) if prefixes else b""
    tx.sapling_spends = [SaplingSpend(p[0:32], anchor, p[32:64], p[64:96]) for p in prefixes]
    tx.sapling_outputs = [SaplingOutput(o[0:32], o[32:64], o[64:96], o) for o in outputs]
    reader.skip(len(prefixes) * (GROTH16_PROOF_BYTES + SIGNATURE_BYTES) + len(outputs) * GROTH16_PROOF_BYTES)
    reader.skip(SIGNATURE_BYTES)  # bindingSigSapling


def _action_bundle(reader: Reader) -> ActionBundle:
    bundle = ActionBundle()
    for _ in range(reader.compact()):
        a = reader.take(ACTION_BYTES)
        bundle.actions.append(Action(a[0:32], a[32:64], a[64:96], a[96:128], a[128:160], a))
    if bundle.actions:
        bundle.flags = reader.u8()
        bundle.value_balance = reader.i64()
        bundle.anchor = reader.take(32)
        reader.skip(reader.compact())  # sizeProofs, proofs
        reader.skip(len(bundle.actions) * SIGNATURE_BYTES + SIGNATURE_BYTES)  # spendAuthSigs, bindingSig
    return bundle


def read_transaction(reader: Reader) -> Transaction:
    start = reader.at
    header = reader.u32()
    overwintered, version = bool(header >> 31), header & 0x7FFFFFFF
    tx = Transaction(raw=b"", version=version, overwintered=overwintered)
    if overwintered:
        tx.version_group_id = reader.u32()
    if version >= 5:
        if not overwintered or version > 6:
            raise FormatError(f"transaction version {version} (overwintered={overwintered}) is not v1-v6")
        tx.consensus_branch_id = reader.u32()
        tx.lock_time = reader.u32()
        tx.expiry_height = reader.u32()
        _transparent(reader, tx)
        _v5_sapling(reader, tx)
        tx.orchard = _action_bundle(reader)
        if version == 6:
            tx.ironwood = _action_bundle(reader)
    else:
        if version < 1 or (overwintered and version < 3):
            raise FormatError(f"transaction version {version} (overwintered={overwintered}) is not v1-v6")
        _transparent(reader, tx)
        tx.lock_time = reader.u32()
        if overwintered:
            tx.expiry_height = reader.u32()
        sapling = overwintered and version == 4
        if sapling:
            _v4_sapling(reader, tx)
        if version >= 2:
            _joinsplits(reader, tx, groth16=sapling)
        if tx.sapling_spends or tx.sapling_outputs:
            reader.skip(SIGNATURE_BYTES)  # bindingSig
    tx.raw = reader.data[start : reader.at]
    return tx


def read_block(raw: bytes) -> Block:
    """Parses a whole block; every byte must belong to the header or a transaction."""
    reader = Reader(raw)
    version = reader.u32()
    previous, merkle, commitments = reader.take(32), reader.take(32), reader.take(32)
    time, bits = reader.u32(), reader.u32()
    nonce = reader.take(32)
    reader.skip(reader.compact())  # Equihash solution
    header_end = reader.at
    transactions = [read_transaction(reader) for _ in range(reader.compact())]
    if reader.at != len(raw):
        raise FormatError(f"{len(raw) - reader.at} bytes after the last transaction")
    return Block(raw, version, previous, merkle, commitments, time, bits, nonce, header_end, transactions)


def merkle_root(txids: list[bytes]) -> bytes:
    """Bitcoin's Merkle tree over transaction ids (internal order), the last node repeated on odd levels."""
    level = list(txids)
    if not level:
        raise FormatError("a block has at least one transaction")
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]
