"""The method classes of a Zakura instance's zcashd sidecar (`node.zcashdCompat`), as the access gateway applies them.

Upstream: zcashd's JSON-RPC table, every `CRPCCommand` row (category, name) of zcash/zcash v6.20.0
(`zbi_infra/data/zcashd-rpc-methods.json`, written by tools/refresh_upstream.py). Zakura's sidecar is the
valargroup/zcashd build, whose source could not be read here: its table is taken to be zcashd 6.20.0's.

zBI's decision, one class per method:
- **never**: changes the node or its peers, mines, reveals the operator's network, ties the node up (a scan of the
  whole chain state, a proof benchmark), or reads and writes files on the node (wallet backups and imports name a
  path on the node's disk). No access file can expose them, whatever the instance.
- **wallet**: the zcashd wallet's keys, balances and spends (table category `wallet` or `disclosure`, plus
  `fundrawtransaction` and `signrawtransaction`, which sign with the wallet's keys when it has one). Exposable only
  on an instance whose `node.zcashdCompat.wallet` is on (which zBI allows on a private instance only), and only to a
  user whose own `zcashdRpc` list names them: never to anonymous callers, never by default.
- **read**: the rest (chain, mempool, raw transactions, address index, utilities): exposable like zebrad's methods.
"""

from __future__ import annotations

import json
from enum import Enum
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from zbi_infra.config.access import NEVER_EXPOSED

if TYPE_CHECKING:
    from zbi_infra.config.access import AccessFile, EndUser
    from zbi_infra.config.instance import InstanceConfig


class ZcashdMethodClass(Enum):
    NEVER = "never"
    WALLET = "wallet"
    READ = "read"


# Beyond the methods no gateway exposes on any node (access.NEVER_EXPOSED): zcashd's own.
ZCASHD_NEVER = frozenset(
    {
        "setlogfilter",  # control: rewrites the node's logging
        "setmocktime",  # hidden: moves the node's clock
        "getgenerate",  # generating: the node's own miner
        "getlocalsolps",  # mining: the node's own miner
        "ping",  # network: acts on peers
        "verifychain",  # re-verifies up to the whole chain: ties up the node
        "gettxoutsetinfo",  # walks the whole UTXO set: ties up the node
        "zcbenchmark",  # wallet: proof benchmarks, minutes of CPU
        "zcsamplejoinsplit",
        "backupwallet",  # wallet files on the node's disk, at a path the caller names
        "dumpwallet",
        "importwallet",
        "z_exportwallet",
        "z_importwallet",
        "resendwallettransactions",  # hidden: rebroadcasts on the node's behalf
    }
)
# Rows outside the wallet's categories that use the wallet's keys.
ZCASHD_WALLET_EXTRA = frozenset({"fundrawtransaction", "signrawtransaction"})
WALLET_CATEGORIES = frozenset({"wallet", "disclosure"})
# Categories whose every row is mining or node control.
NEVER_CATEGORIES = frozenset({"hidden", "generating"})


@cache
def zcashd_rpc_commands() -> dict[str, str]:
    """zcashd's JSON-RPC methods and their table categories."""
    data = json.loads(resources.files("zbi_infra.data").joinpath("zcashd-rpc-methods.json").read_text())
    return {name: row["category"] for name, row in data["commands"].items()}


def zcashd_method_class(method: str) -> ZcashdMethodClass | None:
    """The method's class, or None when zcashd has no such method."""
    category = zcashd_rpc_commands().get(method)
    if category is None:
        return None
    if method in NEVER_EXPOSED or method in ZCASHD_NEVER or category in NEVER_CATEGORIES:
        return ZcashdMethodClass.NEVER
    if category in WALLET_CATEGORIES or method in ZCASHD_WALLET_EXTRA:
        return ZcashdMethodClass.WALLET
    return ZcashdMethodClass.READ


def zcashd_methods(kind: ZcashdMethodClass) -> frozenset[str]:
    return frozenset(m for m in zcashd_rpc_commands() if zcashd_method_class(m) is kind)


def gateway_refused(wallet: bool) -> list[str]:
    """What the gateway refuses on the zcashd route whatever its user table says: the never class, and the wallet
    class unless the instance's wallet is on."""
    refused = zcashd_methods(ZcashdMethodClass.NEVER)
    if not wallet:
        refused |= zcashd_methods(ZcashdMethodClass.WALLET)
    return sorted(refused)


def checked_zcashd_methods(methods: list[str]) -> list[str]:
    """An access file's `zcashdRpc.methods`: zcashd's own methods, none of the never class."""
    import difflib

    for method in methods:
        kind = zcashd_method_class(method)
        if kind is None:
            readable = sorted(zcashd_methods(ZcashdMethodClass.READ))
            close = difflib.get_close_matches(method, readable, n=1)
            fix = f"did you mean {close[0]!r}?" if close else "use one of zcashd's methods (docs/zakura.md)"
            raise ValueError(f"{method!r} is not a zcashd JSON-RPC method. Fix: {fix}")
        if kind is ZcashdMethodClass.NEVER:
            raise ValueError(
                f"{method!r} is never exposed (it changes the node or its peers, mines, reveals the operator's "
                "network, ties the node up or touches files on it). Fix: remove it"
            )
    return methods


def wallet_methods_in(methods: list[str] | None) -> list[str]:
    return sorted(m for m in methods or [] if zcashd_method_class(m) is ZcashdMethodClass.WALLET)


def zcashd_access_problem(access: AccessFile, instance: InstanceConfig) -> str | None:
    """Why an access file's zcashd lists do not fit its instance (completing "instance <name> ..."), or None."""
    compat = instance.node.zcashd_compat
    listed = [access.zcashd_rpc.methods, access.anonymous.zcashd_rpc if access.anonymous else []]
    listed += [user.zcashd_rpc or [] for user in access.users]
    if compat is None and any(listed):
        return (
            "has no zcashd sidecar (node.zcashdCompat), so no zcashd method can be exposed. Fix: remove the zcashdRpc "
            "lists, or give the instance node.kind: zakurad with zcashdCompat"
        )
    wallet = wallet_methods_in([m for methods in listed for m in methods])
    if compat is not None and not compat.wallet and wallet:
        return (
            f"runs its zcashd without a wallet, so {', '.join(sorted(set(wallet)))} cannot be exposed. Fix: remove "
            "them, or (a private instance only) set node.zcashdCompat.wallet: true"
        )
    return None


def refuse_anonymous_wallet(methods: list[str]) -> None:
    if wallet := wallet_methods_in(methods):
        raise ValueError(
            f"anonymous.zcashdRpc: {', '.join(wallet)} are zcashd wallet methods, which callers without a key never "
            "get. Fix: remove them, and list them for a named user instead"
        )


def allowed_zcashd(access: AccessFile, user: EndUser | None) -> list[str]:
    """A user's zcashd methods: their own list, or (none) the instance's minus wallet methods; `None`: anonymous."""
    if user is None:
        return list(access.anonymous.zcashd_rpc) if access.anonymous else []
    if user.zcashd_rpc is not None:
        return list(user.zcashd_rpc)
    wallet = set(wallet_methods_in(access.zcashd_rpc.methods))
    return [method for method in access.zcashd_rpc.methods if method not in wallet]
