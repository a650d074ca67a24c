"""Transparent output scripts: their standard type and, for P2PKH and P2SH, the t-address.

Address encoding (protocol spec §5.6.1.1 "Transparent Addresses"): Base58Check of a two-byte prefix and the 20-byte
hash. Mainnet P2PKH 0x1CB8 ("t1"), P2SH 0x1CBD ("t3"); Testnet and Regtest P2PKH 0x1D25 ("tm"), P2SH 0x1CBA ("t2").
Zebra v6.3.0 uses the same P2PKH prefixes (zebra-chain/src/parameters/network.rs); tests check an encoded address
against Zebra's own RPC answer for Mainnet block 1.
"""

from __future__ import annotations

import hashlib

PREFIXES = {
    "mainnet": {"p2pkh": b"\x1c\xb8", "p2sh": b"\x1c\xbd"},
    "testnet": {"p2pkh": b"\x1d\x25", "p2sh": b"\x1c\xba"},
    "regtest": {"p2pkh": b"\x1d\x25", "p2sh": b"\x1c\xba"},
}
_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
OP_RETURN, OP_CHECKSIG, OP_CHECKMULTISIG = 0x6A, 0xAC, 0xAE
OP_DUP, OP_HASH160, OP_EQUALVERIFY, OP_EQUAL = 0x76, 0xA9, 0x88, 0x87
OP_1, OP_16 = 0x51, 0x60


def base58check(payload: bytes) -> str:
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    number = int.from_bytes(data, "big")
    encoded = ""
    while number:
        number, digit = divmod(number, 58)
        encoded = _ALPHABET[digit] + encoded
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + encoded


def classify(script: bytes) -> tuple[str, bytes | None]:
    """(type, hash160 for p2pkh/p2sh)."""
    n = len(script)
    if (
        n == 25
        and script[:3] == bytes([OP_DUP, OP_HASH160, 20])
        and script[23:] == bytes([OP_EQUALVERIFY, OP_CHECKSIG])
    ):
        return "p2pkh", script[3:23]
    if n == 23 and script[:2] == bytes([OP_HASH160, 20]) and script[22] == OP_EQUAL:
        return "p2sh", script[2:22]
    if n in (35, 67) and script[0] == n - 2 and script[-1] == OP_CHECKSIG:
        return "p2pk", None
    if n and script[0] == OP_RETURN:
        return "nulldata", None
    if n >= 3 and script[-1] == OP_CHECKMULTISIG and OP_1 <= script[0] <= OP_16 and OP_1 <= script[-2] <= OP_16:
        return "multisig", None
    return "nonstandard", None


def address(script_type: str, hash160: bytes | None, network: str) -> str | None:
    if hash160 is None:
        return None
    return base58check(PREFIXES[network][script_type] + hash160)
