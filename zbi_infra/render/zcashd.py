"""zcash.conf for the legacy zcashd full node. RPC credentials are passed as arguments from a Secret, never here."""

from __future__ import annotations

from typing import Any

from zbi_infra.config.instance import Network
from zbi_infra.releases import ZCASHD_AWARENESS_OPTION
from zbi_infra.zcash_ports import PORTS

DATA_DIR = "/var/lib/zcashd"
CONFIG_DIR = "/etc/zcash"
CONFIG_PATH = f"{CONFIG_DIR}/zcash.conf"


# lightwalletd refuses a zcashd without the `lightwalletd` (or `insightexplorer`) experimental feature: it asks
# `getexperimentalfeatures` at start (lightwalletd cmd/root.go). The feature adds the address and block indexes
# light-wallet servers read.
LIGHT_WALLET_OPTIONS = [("experimentalfeatures", "1"), ("lightwalletd", "1")]
# A node, not a wallet: without its wallet zcashd registers no wallet RPC, and getinfo/validateaddress show no
# balance, key pool or `ismine` (src/init.cpp, src/wallet/wallet.cpp at v6.20.0). `extraOptions: {disablewallet:
# false}` turns it back on.
WALLET_OFF = ("disablewallet", "1")


def zcashd_options(
    network: Network,
    *,
    regtest_peers: list[str] | None = None,
    extra_options: dict[str, Any] | None = None,
    serve_light_wallet: bool = False,
) -> list[tuple[str, str]]:
    ports = PORTS[network]
    options: list[tuple[str, str]] = []
    if network is Network.TESTNET:
        options.append(("testnet", "1"))
    if network is Network.REGTEST:
        options.append(("regtest", "1"))
    options += [
        # Since 6.2.0 zcashd refuses to start without it (src/bitcoind.cpp; tests/fixtures/upstream/zcash).
        (ZCASHD_AWARENESS_OPTION, "1"),
        ("server", "1"),
        ("listen", "1"),
        ("bind", f"0.0.0.0:{ports.p2p}"),
        ("rpcport", str(ports.rpc)),
        ("rpcbind", "0.0.0.0"),
        # Pod network only; the NetworkPolicy narrows it to the instance's light-wallet pods.
        ("rpcallowip", "0.0.0.0/0"),
        ("rpcclienttimeout", "30"),
    ]
    if WALLET_OFF[0] not in (extra_options or {}):
        options.append(WALLET_OFF)
    if serve_light_wallet:
        options += LIGHT_WALLET_OPTIONS
    # connect= (not addnode=) so a regtest node talks to its siblings and nothing else.
    options += [("connect", peer) for peer in sorted(regtest_peers or [])]
    for key, value in (extra_options or {}).items():
        values = value if isinstance(value, list) else [value]
        options += [(key, _conf_value(v)) for v in values]
    return options


def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def render_zcash_conf(
    network: Network,
    *,
    regtest_peers: list[str] | None = None,
    extra_options: dict[str, Any] | None = None,
    serve_light_wallet: bool = False,
) -> str:
    lines = ["# Rendered by zBI (zbi_infra/render/zcashd.py). Edit the instance config, not this file."]
    options = zcashd_options(
        network, regtest_peers=regtest_peers, extra_options=extra_options, serve_light_wallet=serve_light_wallet
    )
    lines += [f"{k}={v}" for k, v in options]
    return "\n".join(lines) + "\n"
