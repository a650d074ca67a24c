"""zakurad.toml for one replica of a Zakura instance (zakura-core/zakura, a consensus-compatible Zebra fork).

Zakura reads the same sections as Zebra (`ZakuradConfig`, crates/zakurad/src/config.rs, every section
`deny_unknown_fields`); the keys zBI writes are checked against the pinned release's structs
(tests/fixtures/upstream/zakura/releases/<tag>.json, tests/test_zakura.py). Differences from zebrad.toml:
- paths under /var/lib/zakura and /etc/zakura;
- `network.p2p_stack = "legacy"`: Zakura's default is the Zcash TCP protocol on Mainnet but "dual" (TCP plus its
  own QUIC endpoint) on test networks (`P2pStack::resolve`, crates/zakura-network/src/config.rs). zBI's ports,
  Services and NetworkPolicies model the TCP protocol only, so every network gets it;
- `network.identity_dir` on the data volume (its default `~/.zakura` would be the pod's scratch space);
- `state.storage_mode`: "archive" (Zakura's default) or pruned with a retention window (`node.pruning`).
"""

from __future__ import annotations

from typing import Any

import tomli_w

from zbi_infra.config.health import ReadinessConfig
from zbi_infra.config.instance import Network
from zbi_infra.render.zebrad import STATE_DIR as ZEBRA_STATE_DIR
from zbi_infra.render.zebrad import zebrad_config

DATA_DIR = "/var/lib/zakura"
STATE_DIR = f"{DATA_DIR}/state"
CONFIG_DIR = "/etc/zakura"
CONFIG_PATH = f"{CONFIG_DIR}/zakurad.toml"


def zakurad_command() -> list[str]:
    # `zakurad -c <config_path> start` (deploy/deployer/README.md; `-c/--config` in commands/entry_point.rs).
    return ["zakurad", "-c", CONFIG_PATH, "start"]


def zakurad_config(
    network: Network,
    *,
    extra_options: dict[str, Any] | None = None,
    prune_retention_blocks: int | None = None,
    zcashd_compat: bool = False,
    readiness: ReadinessConfig | None = None,
) -> dict[str, Any]:
    """The config as a mapping (section -> key -> value), before TOML encoding."""
    # Zakura keeps Zebra's [health] section and /ready rule: the same thresholds, tuned the same way (node.readiness).
    config = zebrad_config(network, readiness=readiness)
    config["network"]["cache_dir"] = f"{DATA_DIR}/network"
    config["network"]["identity_dir"] = f"{DATA_DIR}/identity"
    config["network"]["p2p_stack"] = "legacy"
    assert config["state"]["cache_dir"] == ZEBRA_STATE_DIR
    config["state"]["cache_dir"] = STATE_DIR
    config["state"]["storage_mode"] = (
        {"pruned": {"tx_retention": prune_retention_blocks}} if prune_retention_blocks is not None else "archive"
    )
    if zcashd_compat:
        # The mode on, its zcashd run by zBI in the same pod (render/zcashd_compat.py), block inventory gossiped to
        # that loopback peer ("If block_gossip_peer_ips is empty, Zakura defaults it to loopback addresses").
        config["zcashd_compat"] = {"enabled": True, "manage_zcashd": False, "block_gossip_peer_ips": ["127.0.0.1"]}
    for dotted, value in (extra_options or {}).items():
        section, key = dotted.split(".")
        config.setdefault(section, {})[key] = value
    return config


def render_zakurad_toml(network: Network, **options: Any) -> str:
    header = "# Rendered by zBI (zbi_infra/render/zakurad.py). Edit the instance config, not this file.\n"
    config = zakurad_config(network, **options)
    return header + tomli_w.dumps(config)
