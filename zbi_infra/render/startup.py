"""Small start-up scripts the pods run, as pure functions: waiting for a node, advertising a public address."""

from __future__ import annotations

import shlex

WAIT_INTERVAL_SECONDS = 5


def wait_for_tcp_script(host: str, port: int) -> str:
    """Block until `host:port` accepts a TCP connection (bash's /dev/tcp; no extra tool in the image).

    Pointed at the full node's RPC Service, which lists only ready (synced) replicas, this holds a light-wallet
    server back until a node can answer it, instead of letting it exit after its ten start-up tries.
    """
    target = f"/dev/tcp/{host}/{port}"
    return (
        f"until (exec 3<>{shlex.quote(target)}) 2>/dev/null; do "
        f'echo "waiting for a ready full node at {host}:{port}"; sleep {WAIT_INTERVAL_SECONDS}; done'
    )


EXTERNAL_HOST_ENV = "ZBI_P2P_EXTERNAL_HOST"


def advertise_external_address_script(*, p2p_port: int, command: list[str]) -> str:
    """Start `command` with `ZEBRA_NETWORK__EXTERNAL_ADDR` set to the public load balancer's IPv4 address.

    zebrad's `network.external_addr` takes an IP:port (a DNS name is refused), while an AWS NLB is known by name;
    the name is resolved when the node starts (getent, from Debian's libc-bin) and handed to zebrad through the
    ZEBRA_ environment override zebrad reads (zebrad.toml's documented `ZEBRA_SECTION__KEY` form). Unresolvable:
    the node starts without advertising, as it would without inbound P2P.
    """
    run = " ".join(shlex.quote(part) for part in command)
    return (
        f'address=$(getent ahostsv4 "${EXTERNAL_HOST_ENV}" | head -n 1 | cut -d " " -f 1); '
        f'if [ -n "$address" ]; then export ZEBRA_NETWORK__EXTERNAL_ADDR="$address:{p2p_port}"; '
        f'echo "advertising $address:{p2p_port}"; '
        f'else echo "{EXTERNAL_HOST_ENV} did not resolve: not advertising"; fi; '
        f"exec {run}"
    )
