"""Regtest peering for zebrad: peers that appear on localhost.

On Regtest, Zebra keeps only the initial peers whose address is 127.0.0.1 or ::1 (zebra-network's
`Config::initial_peers`, filter `PeerSocketAddr::is_localhost`; evidence in tests/fixtures/upstream/zebra), so a
pod's DNS name in `initial_testnet_peers` is silently dropped and the node never finds its siblings. Each replica
therefore runs one small socat forwarder per sibling: 127.0.0.1:<forward port> in the pod's own network namespace,
relayed to that sibling's P2P port. The node lists only those loopback addresses. A replica's forwarder to itself
is harmless: Zebra recognises its own connection nonce and drops it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Loopback ports for the forwarders, clear of every Zcash port (8232-8233, 18232-18233, 18344).
FORWARD_BASE_PORT = 28344


@dataclass(frozen=True)
class PeerForward:
    replica: int
    local_port: int
    target_host: str
    target_port: int

    @property
    def local_address(self) -> str:
        return f"127.0.0.1:{self.local_port}"


def regtest_forwards(*, statefulset: str, headless_domain: str, replicas: int, p2p_port: int) -> list[PeerForward]:
    """One forward per replica of the StatefulSet: pod `<statefulset>-<i>.<headless_domain>`."""
    return [
        PeerForward(
            replica=i,
            local_port=FORWARD_BASE_PORT + i,
            target_host=f"{statefulset}-{i}.{headless_domain}",
            target_port=p2p_port,
        )
        for i in range(replicas)
    ]


def socat_args(forward: PeerForward) -> list[str]:
    """socat listening on loopback only, a new connection to the sibling per accepted connection.

    The sibling's name is resolved at each connection (not at start), so forwarders start before their peers exist.
    """
    return [
        f"TCP-LISTEN:{forward.local_port},bind=127.0.0.1,fork,reuseaddr",
        f"TCP:{forward.target_host}:{forward.target_port},connect-timeout=5",
    ]
