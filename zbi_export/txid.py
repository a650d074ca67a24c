"""Transaction ids: double SHA-256 of the bytes for v1-v4; for v5 the ZIP 244 digest tree (personalized BLAKE2b-256,
https://zips.z.cash/zip-0244, "TxId Digest"), computed here from the parsed fields. Version 6 (NU6.3) changes the
personalizations and moves the Sapling anchor (Zebra v6.3.0, zebra-chain/src/transaction/serialize.rs, delegating to
librustzcash); not reproduced here, so `txid` answers None and the exporter takes those ids from the node, checked
against the header's Merkle root like every other id."""

from __future__ import annotations

import hashlib
import struct

from zbi_export.block_format import ActionBundle, Transaction, sha256d


def _blake(person: bytes, *parts: bytes) -> bytes:
    digest = hashlib.blake2b(digest_size=32, person=person)
    for part in parts:
        digest.update(part)
    return digest.digest()


def _compact_size(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def _header_digest(tx: Transaction) -> bytes:
    assert tx.version_group_id is not None and tx.consensus_branch_id is not None and tx.expiry_height is not None
    header = (tx.version | 1 << 31) if tx.overwintered else tx.version
    fields = struct.pack("<IIIII", header, tx.version_group_id, tx.consensus_branch_id, tx.lock_time, tx.expiry_height)
    return _blake(b"ZTxIdHeadersHash", fields)


def _transparent_digest(tx: Transaction) -> bytes:
    if not tx.inputs and not tx.outputs:
        return _blake(b"ZTxIdTranspaHash")
    prevouts = _blake(b"ZTxIdPrevoutHash", *(i.previous_txid + struct.pack("<I", i.previous_index) for i in tx.inputs))
    sequences = _blake(b"ZTxIdSequencHash", *(struct.pack("<I", i.sequence) for i in tx.inputs))
    outputs = _blake(
        b"ZTxIdOutputsHash",
        *(struct.pack("<q", o.value) + _compact_size(len(o.script_pubkey)) + o.script_pubkey for o in tx.outputs),
    )
    return _blake(b"ZTxIdTranspaHash", prevouts, sequences, outputs)


def _sapling_digest(tx: Transaction) -> bytes:
    if not tx.sapling_spends and not tx.sapling_outputs:
        return _blake(b"ZTxIdSaplingHash")
    if tx.sapling_spends:
        compact = _blake(b"ZTxIdSSpendCHash", *(s.nullifier for s in tx.sapling_spends))
        noncompact = _blake(b"ZTxIdSSpendNHash", *(s.cv + s.anchor + s.rk for s in tx.sapling_spends))
        spends = _blake(b"ZTxIdSSpendsHash", compact, noncompact)
    else:
        spends = _blake(b"ZTxIdSSpendsHash")
    if tx.sapling_outputs:
        # Output body: cv 0:32, cmu 32:64, ephemeralKey 64:96, encCiphertext 96:676, outCiphertext 676:756.
        bodies = [o.body for o in tx.sapling_outputs]
        compact = _blake(b"ZTxIdSOutC__Hash", *(b[32:148] for b in bodies))
        memos = _blake(b"ZTxIdSOutM__Hash", *(b[148:660] for b in bodies))
        noncompact = _blake(b"ZTxIdSOutN__Hash", *(b[0:32] + b[660:756] for b in bodies))
        outputs = _blake(b"ZTxIdSOutputHash", compact, memos, noncompact)
    else:
        outputs = _blake(b"ZTxIdSOutputHash")
    return _blake(b"ZTxIdSaplingHash", spends, outputs, struct.pack("<q", tx.sapling_value_balance))


def _orchard_digest(bundle: ActionBundle) -> bytes:
    if not bundle.actions:
        return _blake(b"ZTxIdOrchardHash")
    assert bundle.flags is not None and bundle.anchor is not None
    # Action body: cv 0:32, nullifier 32:64, rk 64:96, cmx 96:128, ephemeralKey 128:160, encCiphertext 160:740,
    # outCiphertext 740:820.
    bodies = [a.body for a in bundle.actions]
    compact = _blake(b"ZTxIdOrcActCHash", *(b[32:64] + b[96:212] for b in bodies))
    memos = _blake(b"ZTxIdOrcActMHash", *(b[212:724] for b in bodies))
    noncompact = _blake(b"ZTxIdOrcActNHash", *(b[0:32] + b[64:96] + b[724:820] for b in bodies))
    return _blake(
        b"ZTxIdOrchardHash",
        compact,
        memos,
        noncompact,
        bytes([bundle.flags]),
        struct.pack("<q", bundle.value_balance),
        bundle.anchor,
    )


def txid(tx: Transaction) -> bytes | None:
    """The transaction's id in internal byte order (the RPC shows it reversed); None for v6."""
    if tx.version <= 4:
        return sha256d(tx.raw)
    if tx.version > 5:
        return None
    assert tx.consensus_branch_id is not None
    person = b"ZcashTxHash_" + struct.pack("<I", tx.consensus_branch_id)
    return _blake(person, _header_digest(tx), _transparent_digest(tx), _sapling_digest(tx), _orchard_digest(tx.orchard))
