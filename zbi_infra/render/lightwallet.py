"""Light-wallet server configuration: lightwalletd command-line flags and Zaino's zainod.toml."""

from __future__ import annotations

from typing import Any

import tomli_w

from zbi_infra.config.instance import Network
from zbi_infra.zcash_ports import LIGHTWALLETD_GRPC_PORT, LIGHTWALLETD_HTTP_PORT, ZAINO_GRPC_PORT

LIGHTWALLETD_DATA_DIR = "/var/lib/lightwalletd"
ZAINO_DATA_DIR = "/var/lib/zaino"
TLS_DIR = "/etc/zbi/tls"
ZAINO_CONFIG_FILE = "zainod.toml"
ZAINO_CONFIG_PATH = f"/etc/zaino/{ZAINO_CONFIG_FILE}"


# lightwalletd reads every flag from the environment too (viper AutomaticEnv, `-` -> `_`, no prefix): credentials
# come as RPCUSER/RPCPASSWORD from a Secret, so they are in neither the pod spec nor the process's command line.
LIGHTWALLETD_CREDENTIAL_ENV = {"username": "RPCUSER", "password": "RPCPASSWORD"}


def lightwalletd_args(*, rpc_host: str, rpc_port: int, tls: bool) -> list[str]:
    """Flags of lightwalletd v0.5.3 (cmd/root.go; tests/fixtures/upstream/lightwalletd/flags.json)."""
    args = [
        f"--grpc-bind-addr=0.0.0.0:{LIGHTWALLETD_GRPC_PORT}",
        f"--http-bind-addr=0.0.0.0:{LIGHTWALLETD_HTTP_PORT}",
        f"--data-dir={LIGHTWALLETD_DATA_DIR}",
        "--log-file=/dev/stdout",
        f"--rpchost={rpc_host}",
        f"--rpcport={rpc_port}",
    ]
    if tls:
        args += [f"--tls-cert={TLS_DIR}/tls.crt", f"--tls-key={TLS_DIR}/tls.key"]
    else:
        # Only when TLS terminates in front of the pod (e.g. ACM at the NLB) or the endpoint is cluster-internal.
        args.append("--no-tls-very-insecure")
    return args


def zaino_config(
    network: Network, *, validator_address: str, rpc_user: str, rpc_password: str, tls: bool
) -> dict[str, Any]:
    """zainod.toml for Zaino 0.8's `fetch` backend (JSON-RPC to the full node), keys from zainod/src/config.rs and
    zaino-common's config structs (tests/fixtures/upstream/zaino). `validator_address` is host:port: current
    releases resolve a host name when they connect (a Kubernetes Service name works)."""
    grpc: dict[str, Any] = {"listen_address": f"0.0.0.0:{ZAINO_GRPC_PORT}"}
    if tls:
        grpc["tls"] = {"cert_path": f"{TLS_DIR}/tls.crt", "key_path": f"{TLS_DIR}/tls.key"}
    return {
        "backend": "fetch",
        "network": network.value.capitalize(),
        "grpc_settings": grpc,
        "validator_settings": {
            "validator_jsonrpc_listen_address": validator_address,
            "validator_user": rpc_user,
            "validator_password": rpc_password,
        },
        "storage": {"database": {"path": ZAINO_DATA_DIR}},
    }


def render_zaino_toml(network: Network, *, validator_address: str, rpc_user: str, rpc_password: str, tls: bool) -> str:
    header = "# Rendered by zBI (zbi_infra/render/lightwallet.py).\n"
    config = zaino_config(
        network, validator_address=validator_address, rpc_user=rpc_user, rpc_password=rpc_password, tls=tls
    )
    return header + tomli_w.dumps(config)
