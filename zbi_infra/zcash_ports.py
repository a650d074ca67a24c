"""Zcash ports per network, as zcashd and zebrad use them by default (zcashd chainparamsbase.cpp/chainparams.cpp;
Zebra's zebrad.toml docs). zBI writes them out explicitly so nothing depends on a default that may move."""

from __future__ import annotations

from dataclasses import dataclass

from zbi_infra.config.instance import Network


@dataclass(frozen=True)
class NetworkPorts:
    p2p: int
    rpc: int


PORTS = {
    Network.MAINNET: NetworkPorts(p2p=8233, rpc=8232),
    Network.TESTNET: NetworkPorts(p2p=18233, rpc=18232),
    Network.REGTEST: NetworkPorts(p2p=18344, rpc=18232),
}

ZEBRA_HEALTH_PORT = 8080
ZEBRA_METRICS_PORT = 9999
LIGHTWALLETD_GRPC_PORT = 9067
LIGHTWALLETD_HTTP_PORT = 9068
ZAINO_GRPC_PORT = 8137
