"""Zakura (`node.kind: zakurad`): its pruning option and the rules an instance of it must follow."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from pydantic import Field

from zbi_infra.config.base import StrictBool, StrictInt, StrictModel

if TYPE_CHECKING:
    from zbi_infra.config.instance import InstanceConfig

# Keys zBI sets for zakurad beyond zebrad's (zbi_infra/render/zakurad.py).
ZAKURAD_MANAGED_KEYS = frozenset(
    {"network.p2p_stack", "network.identity_dir", "state.storage_mode", "network.zakura_node_secret_key"}
)
# Zakura's runtime image has no zcashd: its compatibility mode is configured by zBI, not through extraOptions.
ZAKURAD_UNSUPPORTED_SECTIONS = frozenset({"zcashd_compat"})


class PruningConfig(StrictModel):
    """Zakura's pruned storage mode (`state.storage_mode.pruned`): raw transaction bytes older than the window are
    deleted; the UTXO set, nullifiers, trees and transaction indexes stay, so the node still validates and follows
    the chain. One-way: a pruned database cannot be reopened as an archive without a resync from genesis."""

    # MIN_PRUNING_RETENTION (crates/zakura-state/src/constants.rs): zakurad refuses less on Mainnet and Testnet.
    tx_retention_blocks: StrictInt = Field(default=10_000, ge=10_000, le=10_000_000)


class ZcashdCompatConfig(StrictModel):
    """Zakura's zcashd-compatibility mode (docs/zcashd-compat.md): a zcashd P2P sidecar, peer-pinned to its zakurad,
    for integrations built on zcashd's RPC and wallet (zbi_infra/render/zcashd_compat.py)."""

    # The zcashd wallet (keys on the chain volume, the legacy wallet RPCs). Off: zcashd runs -disablewallet.
    # Only on a private instance: no public gRPC and no inbound P2P (config/zakura.py).
    wallet: StrictBool = False


@cache
def zakurad_config_keys() -> dict[str, frozenset[str]]:
    """zakurad.toml's sections and keys at the default Zakura release (tools/add_release.py)."""
    table = json.loads(resources.files("zbi_infra.data").joinpath("releases.json").read_text())
    from zbi_infra.releases import ZAKURAD

    keys = table["kinds"]["zakurad"]["releases"][ZAKURAD.tag]["config_keys"]
    return {section: frozenset(names) for section, names in keys.items()}


def zakurad_problem(instance: InstanceConfig) -> str | None:
    """Why this instance cannot run as configured, or None."""
    from zbi_infra.config.instance import LightwalletKind, Network, NodeKind

    node = instance.node
    if node.kind is not NodeKind.ZAKURAD:
        if node.zcashd_compat:
            return "node.zcashdCompat is Zakura's mode. Fix: set node.kind: zakurad, or remove zcashdCompat"
        only_zakura = "node.pruning: only Zakura prunes. Fix: set node.kind: zakurad, or remove pruning"
        return only_zakura if node.pruning else None
    if instance.network is Network.REGTEST:
        return (
            "node.kind: zakurad is not offered on regtest (zBI's isolated regtest peering is built and tested for "
            "zebrad). Fix: use kind zebrad on regtest"
        )
    if node.pruning and instance.lightwallet.kind is not LightwalletKind.NONE:
        # getblockchaininfo's `pruneheight` (crates/zakura-rpc/src/methods.rs): below it "block bodies cannot be
        # served". lightwalletd and Zaino build their caches from full blocks back to Sapling activation.
        return (
            "node.pruning: a pruned zakurad cannot serve the block bodies below its retention window, which a "
            f"light-wallet server ({instance.lightwallet.kind.value}) reads to build its cache from Sapling "
            "activation. Fix: remove node.pruning (archive), or set lightwallet.kind: none"
        )
    compat = node.zcashd_compat
    if compat and node.pruning:
        # docs/zcashd-compat.md: "a pruned front ... cannot bootstrap a sidecar from genesis"; zBI's sidecar starts
        # from an empty datadir.
        return (
            "node.zcashdCompat with node.pruning: the zcashd sidecar syncs from genesis through its zakurad, which a "
            "pruned zakurad cannot serve. Fix: remove node.pruning"
        )
    if compat and compat.wallet and (instance.endpoints.public_grpc or node.inbound_p2p):
        return (
            "node.zcashdCompat.wallet: a zcashd wallet holds keys and spends funds; zBI allows it only on a private "
            "instance. Fix: set endpoints.publicGrpc and node.inboundP2p to false, or wallet: false"
        )
    if node.pruning and node.archive:
        return (
            "node.pruning and node.archive: an archive instance keeps every historical transaction; pruning deletes "
            "them (and cannot be undone without a resync). Fix: choose one"
        )
    return None
