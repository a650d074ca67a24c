"""Config renderers, checked against upstream evidence vendored in tests/fixtures/upstream (see SOURCES.json)."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest

from tests.conftest import UPSTREAM
from zbi_infra.config.instance import Network
from zbi_infra.render.lightwallet import lightwalletd_args, render_zaino_toml
from zbi_infra.render.rpc_guard import NODE_LOOPBACK_RPC_PORT
from zbi_infra.render.zcashd import render_zcash_conf
from zbi_infra.render.zebrad import render_zebrad_toml

# zcash.conf options outside the reference excerpt (network and RPC sections): the experimental light-wallet
# indexes lightwalletd requires of zcashd (zcashd's experimental features; lightwalletd cmd/root.go).
ZCASHD_LIGHT_WALLET_KEYS = {"experimentalfeatures", "lightwalletd"}


def flatten(table: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            keys |= flatten(value, f"{path}.") or {path}
        else:
            keys.add(path)
    return keys


@pytest.fixture(scope="module")
def zebrad_reference_keys() -> set[str]:
    schema = json.loads((UPSTREAM / "zebra" / "zebrad-config-keys.json").read_text())
    return {f"{section}.{key}" for section, keys in schema.items() for key in keys}


@pytest.mark.parametrize("network", list(Network))
def test_every_zebrad_key_exists_upstream(network: Network, zebrad_reference_keys: set[str]) -> None:
    rendered = tomllib.loads(render_zebrad_toml(network, regtest_peers=["a:18344", "b:18344"]))
    unknown = flatten(rendered) - zebrad_reference_keys
    assert not unknown, f"keys not in zebrad 6.3.0: {sorted(unknown)}"


@pytest.mark.parametrize(
    ("network", "name", "p2p", "rpc"),
    [
        (Network.MAINNET, "Mainnet", 8233, 8232),
        (Network.TESTNET, "Testnet", 18233, 18232),
        (Network.REGTEST, "Regtest", 18344, 18232),
    ],
)
def test_zebrad_network_and_ports(network: Network, name: str, p2p: int, rpc: int) -> None:
    config = tomllib.loads(render_zebrad_toml(network))
    assert config["network"]["network"] == name
    assert config["network"]["listen_addr"].endswith(f":{p2p}")
    # The network's RPC port belongs to the RPC guard in the same pod; zebrad listens on loopback only.
    assert config["rpc"]["listen_addr"] == f"127.0.0.1:{NODE_LOOPBACK_RPC_PORT}" != f"127.0.0.1:{rpc}"
    assert config["health"]["listen_addr"] == "0.0.0.0:8080"
    assert config["metrics"]["endpoint_addr"] == "0.0.0.0:9999"
    assert config["rpc"]["enable_cookie_auth"] is False
    assert config["state"]["cache_dir"].startswith("/var/lib/zebra")


def test_health_checks_enforced_on_testnet_not_on_regtest() -> None:
    assert tomllib.loads(render_zebrad_toml(Network.TESTNET))["health"]["enforce_on_test_networks"] is True
    assert tomllib.loads(render_zebrad_toml(Network.REGTEST))["health"]["enforce_on_test_networks"] is False


def test_regtest_peers_only_with_its_siblings() -> None:
    peers = ["zebrad-1.h:18344", "zebrad-0.h:18344"]
    config = tomllib.loads(render_zebrad_toml(Network.REGTEST, regtest_peers=peers))
    assert config["network"]["initial_testnet_peers"] == sorted(peers)
    assert config["network"]["initial_mainnet_peers"] == []
    mainnet = tomllib.loads(render_zebrad_toml(Network.MAINNET))
    assert "initial_mainnet_peers" not in mainnet["network"]  # Zebra's own seeders stay in charge


def test_zebrad_extra_options_are_merged() -> None:
    config = tomllib.loads(
        render_zebrad_toml(
            Network.MAINNET, extra_options={"sync.download_concurrency_limit": 10, "mining.miner_address": "t1x"}
        )
    )
    assert config["sync"]["download_concurrency_limit"] == 10
    assert config["mining"]["miner_address"] == "t1x"
    assert config["network"]["network"] == "Mainnet"


def zcash_conf_reference_keys() -> set[str]:
    text = (UPSTREAM / "zcash" / "zcash.conf.example").read_text()
    # The deprecation acknowledgement zcashd demands since 6.2.0 (src/bitcoind.cpp), not in the example file.
    awareness = json.loads((UPSTREAM / "zcash" / "deprecation.json").read_text())["awareness_option"]
    wallet = json.loads((UPSTREAM / "zcash" / "wallet-options.json").read_text())["options"]
    return set(re.findall(r"^#?([a-z]+)=", text, flags=re.MULTILINE)) | {awareness, *wallet}


def parse_conf(text: str) -> list[tuple[str, str]]:
    return [tuple(line.split("=", 1)) for line in text.splitlines() if line and not line.startswith("#")]  # type: ignore[misc]


@pytest.mark.parametrize("network", list(Network))
def test_every_zcash_conf_key_exists_upstream(network: Network) -> None:
    keys = {k for k, _ in parse_conf(render_zcash_conf(network, regtest_peers=["a:18344"]))}
    assert keys <= zcash_conf_reference_keys(), keys - zcash_conf_reference_keys()
    serving = {k for k, _ in parse_conf(render_zcash_conf(network, serve_light_wallet=True))}
    assert serving - keys == ZCASHD_LIGHT_WALLET_KEYS


def test_zcash_conf_networks_and_no_credentials() -> None:
    mainnet = dict(parse_conf(render_zcash_conf(Network.MAINNET)))
    assert "testnet" not in mainnet and "regtest" not in mainnet and mainnet["rpcport"] == "8232"
    testnet = dict(parse_conf(render_zcash_conf(Network.TESTNET)))
    assert testnet["testnet"] == "1" and testnet["rpcport"] == "18232" and testnet["bind"].endswith(":18233")
    regtest = parse_conf(render_zcash_conf(Network.REGTEST, regtest_peers=["b:18344", "a:18344"]))
    assert ("regtest", "1") in regtest
    assert [v for k, v in regtest if k == "connect"] == ["a:18344", "b:18344"]
    for conf in (mainnet, testnet, dict(regtest)):
        assert "rpcpassword" not in conf and "rpcuser" not in conf


def test_zcash_conf_extra_options() -> None:
    conf = parse_conf(render_zcash_conf(Network.MAINNET, extra_options={"maxconnections": 40, "txindex": True}))
    assert ("maxconnections", "40") in conf and ("txindex", "1") in conf
    # The wallet is off unless the instance asks for it, and then set once.
    assert ("disablewallet", "1") in conf
    asked = parse_conf(render_zcash_conf(Network.MAINNET, extra_options={"disablewallet": False}))
    assert [v for k, v in asked if k == "disablewallet"] == ["0"]


def test_lightwalletd_args_keep_credentials_out_and_tls_in() -> None:
    args = lightwalletd_args(rpc_host="zebrad-rpc.ns.svc", rpc_port=18232, tls=True)
    assert not any("rpcpassword" in a or "rpcuser" in a for a in args)  # from RPCUSER/RPCPASSWORD env vars
    assert "--tls-cert=/etc/zbi/tls/tls.crt" in args and "--no-tls-very-insecure" not in args
    assert "--rpchost=zebrad-rpc.ns.svc" in args and "--rpcport=18232" in args
    assert "--grpc-bind-addr=0.0.0.0:9067" in args and "--http-bind-addr=0.0.0.0:9068" in args
    insecure = lightwalletd_args(rpc_host="h", rpc_port=8232, tls=False)
    assert "--no-tls-very-insecure" in insecure and not any(a.startswith("--tls-cert") for a in insecure)


def test_zaino_config() -> None:
    config = tomllib.loads(
        render_zaino_toml(
            Network.TESTNET, validator_address="172.20.1.2:18232", rpc_user="u", rpc_password="p", tls=True
        )
    )
    assert config["backend"] == "fetch"
    assert config["network"] == "Testnet"
    assert config["validator_settings"]["validator_jsonrpc_listen_address"] == "172.20.1.2:18232"
    assert config["grpc_settings"]["tls"]["cert_path"] == "/etc/zbi/tls/tls.crt"
