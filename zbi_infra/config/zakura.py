"""Zakura (`node.kind: zakurad`): its pruning option and the rules an instance of it must follow."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from pydantic import Field

from zbi_infra.config.base import StrictInt, StrictModel

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
        return (
            "node.pruning: only Zakura prunes. Fix: set node.kind: zakurad, or remove pruning" if node.pruning else None
        )
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
    if node.pruning and node.archive:
        return (
            "node.pruning and node.archive: an archive instance keeps every historical transaction; pruning deletes "
            "them (and cannot be undone without a resync). Fix: choose one"
        )
    return None
