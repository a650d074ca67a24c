"""zebrad.toml for one replica of an instance."""

from __future__ import annotations

from typing import Any

import tomli_w

from zbi_infra.config.health import ReadinessConfig, default_readiness
from zbi_infra.config.instance import Network
from zbi_infra.render.rpc_guard import NODE_LOOPBACK_RPC_PORT
from zbi_infra.zcash_ports import PORTS, ZEBRA_HEALTH_PORT, ZEBRA_METRICS_PORT

DATA_DIR = "/var/lib/zebra"
STATE_DIR = f"{DATA_DIR}/state"
CONFIG_DIR = "/etc/zebra"
CONFIG_PATH = f"{CONFIG_DIR}/zebrad.toml"
_NETWORK_NAMES = {Network.MAINNET: "Mainnet", Network.TESTNET: "Testnet", Network.REGTEST: "Regtest"}


def zebrad_config(
    network: Network,
    *,
    regtest_peers: list[str] | None = None,
    extra_options: dict[str, Any] | None = None,
    readiness: ReadinessConfig | None = None,
) -> dict[str, Any]:
    """The config as a mapping (section -> key -> value), before TOML encoding."""
    ports = PORTS[network]
    thresholds = readiness or default_readiness(network is Network.MAINNET)
    config: dict[str, dict[str, Any]] = {
        "network": {
            "network": _NETWORK_NAMES[network],
            "listen_addr": f"0.0.0.0:{ports.p2p}",
            # On the data volume: the read-only root filesystem has no writable home directory.
            "cache_dir": f"{DATA_DIR}/network",
        },
        "state": {"cache_dir": STATE_DIR},
        "rpc": {
            # Inside the pod only: the RPC guard in the same pod (render/rpc_guard.py) holds the network's RPC port
            # and forwards only calls carrying the instance's credential.
            "listen_addr": f"127.0.0.1:{NODE_LOOPBACK_RPC_PORT}",
            # The cookie is written inside the node's pod, where callers cannot read it; the guard authenticates
            # them instead, with the instance's RPC user and password.
            "enable_cookie_auth": False,
        },
        "health": {
            "listen_addr": f"0.0.0.0:{ZEBRA_HEALTH_PORT}",
            # Zebra skips the checks on test networks unless told otherwise; zBI wants real readiness on testnet.
            # An isolated regtest network has no steady tip to measure, so there the checks stay off.
            "enforce_on_test_networks": network is Network.TESTNET,
            "min_connected_peers": 1,
            # Not zebrad's defaults (2 blocks, 5m): its lag is estimated from the wall clock, so those fail every
            # replica together in one block gap out of twenty (zbi_infra/config/health.py, tests/readiness_model.py).
            "ready_max_blocks_behind": thresholds.ready_max_blocks_behind,
            "ready_max_tip_age": thresholds.ready_max_tip_age,
        },
        "metrics": {"endpoint_addr": f"0.0.0.0:{ZEBRA_METRICS_PORT}"},
        "tracing": {"use_color": False, "force_use_color": False},
    }
    if network is Network.REGTEST:
        # Regtest reads its peers from initial_testnet_peers, and keeps only localhost ones (zbi_infra/render/
        # peering.py): the loopback forwarders to the instance's own pods, so the network stays isolated from every
        # public testnet node.
        config["network"]["initial_testnet_peers"] = sorted(regtest_peers or [])
        config["network"]["initial_mainnet_peers"] = []
    for dotted, value in (extra_options or {}).items():
        *sections, key = dotted.split(".")
        target = config
        for section in sections:
            target = target.setdefault(section, {})
        target[key] = value
    return config


def render_zebrad_toml(
    network: Network,
    *,
    regtest_peers: list[str] | None = None,
    extra_options: dict[str, Any] | None = None,
    readiness: ReadinessConfig | None = None,
) -> str:
    header = "# Rendered by zBI (zbi_infra/render/zebrad.py). Edit the instance config, not this file.\n"
    config = zebrad_config(network, regtest_peers=regtest_peers, extra_options=extra_options, readiness=readiness)
    return header + tomli_w.dumps(config)
