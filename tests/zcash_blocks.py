"""Real Zcash blocks (Zebra's test vectors, vendored compressed under tests/fixtures/upstream/zebra/blocks/) and the
`getblock` answers a node gives for them, built from their bytes.

Verbosity 0 is the block's hex, as zebrad answers it. Verbosity 1 and 2 carry the header decoded from the bytes and
the real transaction ids: the block is split into its transactions (formats v1 to v4, which cover the vendored blocks:
all are from before NU5) and each id is the double SHA-256 of the transaction's bytes; the split is checked by
recomputing the header's Merkle root from those ids. Verbosity 2 gives each transaction its real `hex`, `txid`,
`size`, `version` and `locktime` but not zebrad's decoded `vin`/`vout`/shielded fields: its size is a lower bound of
zebrad's (the hex, twice the block's size, is most of it)."""

from __future__ import annotations

import hashlib
import lzma
import struct
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from tests.conftest import UPSTREAM

BLOCKS = UPSTREAM / "zebra" / "blocks"
# (file, height): the largest block of Zebra's vectors (~1.9 MB, Testnet, nearly the 2 MB maximum) and smaller ones.
LARGEST = "block-test-0-141-042.bin.xz"
VECTORS = {
    "block-main-0-000-002.bin.xz": 2,
    "block-main-0-419-201.bin.xz": 419_201,
    "block-main-1-046-401.bin.xz": 1_046_401,
    LARGEST: 141_042,
}
HEADER_BYTES = 4 + 32 + 32 + 32 + 4 + 4 + 32  # before the Equihash solution


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


class Reader:
    def __init__(self, data: bytes, at: int = 0) -> None:
        self.data, self.at = data, at

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise ValueError("truncated")
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def compact(self) -> int:
        first = self.take(1)[0]
        if first < 0xFD:
            return first
        return int.from_bytes(self.take({0xFD: 2, 0xFE: 4, 0xFF: 8}[first]), "little")

    def skip_script(self) -> None:
        self.take(self.compact())


@dataclass
class Sapling:
    """A transaction's Sapling parts, as compact blocks carry them: nullifiers; (cmu, ephemeral key, the first 52
    bytes of the encrypted note) of each output."""

    spends: list[bytes] = field(default_factory=list)
    outputs: list[tuple[bytes, bytes, bytes]] = field(default_factory=list)


def transaction_end(reader: Reader, sapling: Sapling | None = None) -> int:
    """Reads one v1-v4 transaction (Zcash protocol spec §7.1) and returns where it ends (its Sapling parts into
    `sapling` when given)."""
    header = reader.u32()
    overwintered, version = header >> 31, header & 0x7FFFFFFF
    if overwintered:
        reader.take(4)  # version group id
    for _ in range(reader.compact()):  # transparent inputs: outpoint, script, sequence
        reader.take(36)
        reader.skip_script()
        reader.take(4)
    for _ in range(reader.compact()):  # transparent outputs: value, script
        reader.take(8)
        reader.skip_script()
    reader.take(4)  # lock time
    if overwintered:
        reader.take(4)  # expiry height
    spends = outputs = 0
    if overwintered and version >= 4:
        reader.take(8)  # Sapling value balance
        spends = reader.compact()
        for _ in range(spends):  # cv, anchor, nullifier, rk, proof, signature
            spend = reader.take(384)
            if sapling is not None:
                sapling.spends.append(spend[64:96])
        outputs = reader.compact()
        for _ in range(outputs):  # cv, cmu, ephemeral key, encrypted note (580), out ciphertext, proof
            output = reader.take(948)
            if sapling is not None:
                sapling.outputs.append((output[32:64], output[64:96], output[96:148]))
    if version >= 2:
        joinsplits = reader.compact()
        # BCTV14 proofs before Sapling (1802 bytes a JoinSplit), Groth16 from v4 (1698 bytes).
        reader.take((1698 if overwintered and version >= 4 else 1802) * joinsplits)
        if joinsplits:
            reader.take(32 + 64)  # joinSplitPubKey, joinSplitSig
    if spends + outputs:
        reader.take(64)  # binding signature
    return reader.at


@dataclass(frozen=True)
class Block:
    height: int
    raw: bytes

    @property
    def hash(self) -> str:
        return sha256d(self.raw[: self.header_end])[::-1].hex()

    @property
    def header_end(self) -> int:
        reader = Reader(self.raw, HEADER_BYTES)
        reader.take(reader.compact())
        return reader.at

    def transactions(self) -> list[bytes]:
        reader = Reader(self.raw, self.header_end)
        count = reader.compact()
        found = []
        for _ in range(count):
            start = reader.at
            found.append(self.raw[start : transaction_end(reader)])
        if reader.at != len(self.raw):
            raise ValueError(f"block {self.height}: {len(self.raw) - reader.at} bytes after the last transaction")
        return found

    def merkle_root(self) -> bytes:
        level = [sha256d(tx) for tx in self.transactions()]
        while len(level) > 1:
            if len(level) % 2:
                level.append(level[-1])
            level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        return level[0]

    def header(self) -> dict[str, Any]:
        version, = struct.unpack("<I", self.raw[:4])  # fmt: skip
        time, bits = struct.unpack("<II", self.raw[100:108])
        reader = Reader(self.raw, HEADER_BYTES)
        solution = reader.take(reader.compact())
        return {
            "hash": self.hash,
            "confirmations": 10,
            "size": len(self.raw),
            "height": self.height,
            "version": version,
            "merkleroot": self.raw[36:68][::-1].hex(),
            "finalsaplingroot": self.raw[68:100][::-1].hex(),
            "time": time,
            "nonce": self.raw[108:140][::-1].hex(),
            "solution": solution.hex(),
            "bits": f"{bits:08x}",
            "difficulty": 1.0,
            "previousblockhash": self.raw[4:36][::-1].hex(),
        }

    def compact(self) -> dict[str, Any]:
        """lightwalletd's CompactBlock fields (walletrpc/compact_formats.proto) from the real bytes: the transactions
        with Sapling spends or outputs, each with its id (protocol order), nullifiers and outputs; the hashes in
        protocol order. The protocol's message, not lightwalletd's own code, is the model."""
        vtx = []
        for index, tx in enumerate(self.transactions()):
            sapling = Sapling()
            transaction_end(Reader(tx), sapling)
            if sapling.spends or sapling.outputs:
                vtx.append({"index": index, "txid": sha256d(tx), "spends": sapling.spends, "outputs": sapling.outputs})
        time, = struct.unpack("<I", self.raw[100:104])  # fmt: skip
        return {"height": self.height, "hash": sha256d(self.raw[: self.header_end]), "prevHash": self.raw[4:36],
                "time": time, "vtx": vtx}  # fmt: skip

    def verbose(self, verbosity: int) -> dict[str, Any]:
        transactions = self.transactions()
        if verbosity == 1:
            tx: list[Any] = [sha256d(t)[::-1].hex() for t in transactions]
        else:
            tx = [
                {
                    "hex": t.hex(),
                    "txid": sha256d(t)[::-1].hex(),
                    "size": len(t),
                    "version": struct.unpack("<I", t[:4])[0] & 0x7FFFFFFF,
                    "locktime": 0,
                    "height": self.height,
                    "confirmations": 10,
                }
                for t in transactions
            ]
        return {**self.header(), "tx": tx, "nTx": len(transactions)}


@cache
def block(name: str) -> Block:
    return Block(VECTORS[name], lzma.decompress((BLOCKS / name).read_bytes()))


def by_reference(reference: str) -> Block | None:
    """The vendored block of this height or hash, if any."""
    for name in VECTORS:
        candidate = block(name)
        if reference in (str(candidate.height), candidate.hash):
            return candidate
    return None


def getblock_result(params: list[Any]) -> Any:
    """What zebrad answers `getblock [reference, verbosity]` with, for a vendored block (None: unknown block)."""
    found = by_reference(str(params[0])) if params else None
    if found is None:
        return None
    verbosity = params[1] if len(params) > 1 else 1
    return found.raw.hex() if verbosity == 0 else found.verbose(verbosity)
