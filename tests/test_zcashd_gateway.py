"""The zcashd sidecar's JSON-RPC behind the access gateway (Zakura's zcashd-compatibility mode): zcashd's method
table at v6.20.0 classified (never, wallet, read), the access file's rules, and the rendered gateway in Debian's
nginx routing /zcashd to a fake zcashd and every other path to the node, each with its own method lists."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UPSTREAM, PlanStack
from tests.gateway_harness import KEYS, Gateway, Node, read_user_table, running_gateway, start_node, write_user_table
from tests.k8s_objects import objects, one, pod_spec
from tests.netpol_model import Pod, outside, reachable
from zbi_infra.access_keys import key_hash
from zbi_infra.config.access import NEVER_EXPOSED, AccessFile, check_for_instance, parse_access
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.config.zcashd_methods import ZcashdMethodClass, zcashd_method_class, zcashd_methods, zcashd_rpc_commands
from zbi_infra.errors import ConfigError
from zbi_infra.node.context import RPC_SECRET
from zbi_infra.node.zcashd_compat import ZCASHD_RPC_PORT_NAME
from zbi_infra.plan.engine import Plan
from zbi_infra.render.gateway import GatewayUpstreams
from zbi_infra.render.gateway_engines import Engine
from zbi_infra.render.gateway_nginx import pod_files
from zbi_infra.render.zcashd_compat import CREDENTIAL_ENV, RPC_PORT

TABLE = json.loads((UPSTREAM / "zcash/rpc-commands.json").read_text())
READ = ["getblockcount", "getrawtransaction", "z_gettreestate", "getinfo"]


def zcashd_access(*, wallet_user: list[str] | None = None) -> AccessFile:
    users: list[dict[str, Any]] = [
        {"name": "exchange", "keySha256": key_hash(KEYS["exchange"])},
        {"name": "analytics", "keySha256": key_hash(KEYS["analytics"]), "zcashdRpc": ["getblockcount"]},
    ]
    if wallet_user is not None:
        users.append({"name": "batcher", "keySha256": key_hash(KEYS["batcher"]), "zcashdRpc": wallet_user})
    instance_methods = READ + sorted({m for m in wallet_user or [] if m not in READ})
    return parse_access(
        {
            "jsonRpc": {"methods": ["getblockcount", "getinfo"]},
            "zcashdRpc": {"methods": instance_methods},
            "anonymous": {"zcashdRpc": ["getblockcount"]},
            "users": users,
        },
        "access/compat.yaml",
    )


# ---- the method table and its classes ----------------------------------------------------------------------------


def test_the_package_table_is_zcashds_own_at_the_pinned_tag() -> None:
    packaged = {name: row["category"] for name, row in TABLE["commands"].items()}
    assert zcashd_rpc_commands() == packaged
    assert TABLE["release"] == "6.20.0" and len(packaged) > 100
    # Spot checks against the source rows (src/rpc/blockchain.cpp, src/wallet/rpcwallet.cpp at v6.20.0).
    assert packaged["z_gettreestate"] == "blockchain" and packaged["z_sendmany"] == "wallet"


def test_every_method_has_one_class_and_wallet_rows_are_never_read() -> None:
    classes = {kind: zcashd_methods(kind) for kind in ZcashdMethodClass}
    assert set().union(*classes.values()) == set(zcashd_rpc_commands())
    assert sum(len(c) for c in classes.values()) == len(zcashd_rpc_commands())
    for name, category in zcashd_rpc_commands().items():
        if category in ("wallet", "disclosure", "hidden", "generating"):
            assert zcashd_method_class(name) is not ZcashdMethodClass.READ, name
    # What no node exposes stays refused on zcashd too; zcashd's own z_ read methods are readable there.
    assert NEVER_EXPOSED & set(zcashd_rpc_commands()) <= classes[ZcashdMethodClass.NEVER]
    assert {"z_gettreestate", "z_getsubtreesbyindex", "z_validateaddress"} <= classes[ZcashdMethodClass.READ]
    assert {"backupwallet", "z_importwallet", "verifychain", "stop"} <= classes[ZcashdMethodClass.NEVER]
    assert zcashd_method_class("getblockchain") is None


# ---- the access file ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"zcashdRpc": {"methods": ["getblokcount"]}}, "did you mean 'getblockcount'"),
        ({"zcashdRpc": {"methods": ["backupwallet"]}}, "'backupwallet' is never exposed"),
        ({"zcashdRpc": {"methods": ["stop"]}}, "'stop' is never exposed"),
        (
            {"zcashdRpc": {"methods": ["z_sendmany"]}, "anonymous": {"zcashdRpc": ["z_sendmany"]}},
            "callers without a key never get",
        ),
        ({"zcashdRpc": {"methods": ["getblockcount"]}, "anonymous": {"zcashdRpc": ["getinfo"]}}, "not in zcashdRpc"),
    ],
)
def test_bad_zcashd_lists_are_refused_with_the_fix(document: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_access(document, "access/compat.yaml")


def instance(compat: dict[str, Any] | None, *, lightwallet: str = "none") -> InstanceConfig:
    node: dict[str, Any] = {"kind": "zakurad"}
    if compat is not None:
        node["zcashdCompat"] = compat
    return InstanceConfig.model_validate({"network": "testnet", "node": node, "lightwallet": {"kind": lightwallet}})


def test_zcashd_lists_need_a_sidecar_and_wallet_methods_its_wallet() -> None:
    read_only = zcashd_access()
    with pytest.raises(ConfigError, match="has no zcashd sidecar"):
        check_for_instance(read_only, "compat", instance(None), "access/compat.yaml")
    check_for_instance(read_only, "compat", instance({}), "access/compat.yaml")
    spender = zcashd_access(wallet_user=["getblockcount", "z_sendmany"])
    with pytest.raises(ConfigError, match=r"runs its zcashd without a wallet, so z_sendmany cannot.*wallet: true"):
        check_for_instance(spender, "compat", instance({}), "access/compat.yaml")
    check_for_instance(spender, "compat", instance({"wallet": True}), "access/compat.yaml")


def test_wallet_methods_go_only_to_users_who_name_them() -> None:
    file = zcashd_access(wallet_user=["getblockcount", "z_sendmany"])
    assert "z_sendmany" in file.zcashd_rpc.methods
    # `exchange` has no list of its own: every method the instance exposes, except wallet methods.
    assert file.allowed_zcashd(file.user("exchange")) == READ
    assert file.allowed_zcashd(file.user("batcher")) == ["getblockcount", "z_sendmany"]
    assert file.allowed_zcashd(None) == ["getblockcount"]


def test_the_pod_serves_zcashd_only_when_the_instance_has_one() -> None:
    file = zcashd_access()
    without = pod_files(file, GatewayUpstreams(rpc="node:8232"), max_body_bytes=65536, metrics_syslog="127.0.0.1:1")
    assert "zbi_zcashd" not in without["nginx.conf"] and "this instance has no zcashd" in without["nginx.conf"]
    served = pod_files(
        file, GatewayUpstreams(rpc="node:8232", zcashd="node:8252"), max_body_bytes=65536, metrics_syslog="127.0.0.1:1"
    )
    assert "server node:8252;" in served["nginx.conf"]
    # The module's own refusals: wallet methods while the wallet is off, not when it is on.
    assert '"z_sendmany"' in served["gateway.js"]
    wallet = pod_files(
        file,
        GatewayUpstreams(rpc="node:8232", zcashd="node:8252", zcashd_wallet=True),
        max_body_bytes=65536,
        metrics_syslog="127.0.0.1:1",
    )
    assert '"z_sendmany"' not in wallet["gateway.js"] and '"backupwallet"' in wallet["gateway.js"]


# ---- live: Debian's nginx, a fake node and a fake zcashd ----------------------------------------------------------


@dataclasses.dataclass
class Pair:
    node_rpc: Gateway
    zcashd_rpc: Gateway
    node: Node
    zcashd: Node


@contextmanager
def serving(
    directory: Path, file: AccessFile, *, zcashd: bool = True, wallet: bool = False, engine: Engine = "njs"
) -> Iterator[Pair]:
    node, sidecar = start_node(), start_node()
    try:
        with running_gateway(
            directory,
            f"127.0.0.1:{node.server.server_port}",
            node,
            zcashd_upstream=f"127.0.0.1:{sidecar.server.server_port}" if zcashd else None,
            zcashd_wallet=wallet,
            access_file=file,
            engine=engine,
        ) as gateway:
            yield Pair(gateway, dataclasses.replace(gateway, url=gateway.url + "zcashd"), node, sidecar)
    finally:
        node.server.shutdown()
        sidecar.server.shutdown()


@pytest.fixture(scope="module")
def read_only(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with serving(tmp_path_factory.mktemp("zcashd-gateway"), zcashd_access(), engine=engine) as pair:
        yield pair


def answered(body: Any) -> Any:
    return body.get("result", {}).get("answered") if isinstance(body, dict) and body.get("result") else None


def test_zcashd_calls_reach_the_sidecar_and_node_calls_the_node(read_only: Pair) -> None:
    node_before, zcashd_before = len(read_only.node.received), len(read_only.zcashd.received)
    assert answered(read_only.zcashd_rpc.call({"method": "getrawtransaction", "params": ["00"], "id": 1})[1]) == (
        "getrawtransaction"
    )
    assert len(read_only.zcashd.received) == zcashd_before + 1 and len(read_only.node.received) == node_before
    assert json.loads(read_only.zcashd.received[-1])["method"] == "getrawtransaction"
    # With the node's credentials, never the caller's key (the fake zcashd answers 401 to anything else).
    assert KEYS["exchange"] not in " ".join(read_only.zcashd.seen_auth)
    # getrawtransaction is in the zcashd list only: the node's path refuses it.
    status, body = read_only.node_rpc.call({"method": "getrawtransaction", "params": ["00"], "id": 1})
    assert status == 200 and body["error"]["code"] == -32601
    assert len(read_only.node.received) == node_before


def test_each_path_applies_its_own_lists(read_only: Pair) -> None:
    # zcashd's read-only z_ methods pass on /zcashd; the node's path refuses every z_ method.
    assert answered(read_only.zcashd_rpc.call({"method": "z_gettreestate", "params": ["1"], "id": 2})[1])
    assert read_only.node_rpc.call({"method": "z_gettreestate", "id": 2})[1]["error"]["code"] == -32601
    # A narrower user, and callers without a key.
    assert read_only.zcashd_rpc.call({"method": "getinfo", "id": 3}, user="analytics")[1]["error"]["code"] == -32601
    assert answered(read_only.zcashd_rpc.call({"method": "getblockcount", "id": 3}, user="analytics")[1])
    assert answered(read_only.zcashd_rpc.call({"method": "getblockcount", "id": 4}, user=None)[1])
    assert read_only.zcashd_rpc.call({"method": "getinfo", "id": 4}, user=None)[1]["error"]["code"] == -32601
    assert read_only.zcashd_rpc.call({"method": "getblockcount", "id": 5}, user="analytics", key="wrong")[0] == 401


def test_a_mixed_batch_is_spliced_through_the_sidecars_relay(read_only: Pair) -> None:
    before = len(read_only.zcashd.received)
    batch = [
        {"method": "getblockcount", "id": 1},
        {"method": "z_sendmany", "params": [], "id": 2},
        {"method": "getinfo", "id": 3},
    ]
    status, body = read_only.zcashd_rpc.call(batch)
    assert status == 200 and [answer["id"] for answer in body] == [1, 2, 3]
    assert answered(body[0]) == "getblockcount" and body[1]["error"]["code"] == -32601
    # getinfo's `errors` (a log line) is withheld on zcashd's path too.
    assert body[2]["result"]["errors"] == "withheld by the gateway"
    assert [c["method"] for c in json.loads(read_only.zcashd.received[before])] == ["getblockcount", "getinfo"]


def test_wallet_and_never_methods_are_refused_whatever_the_table_says(read_only: Pair) -> None:
    directory = read_only.node_rpc.config_dir
    original = read_user_table(directory)
    tampered = json.loads(json.dumps(original))
    for entry in tampered["users"].values():
        entry["zcashdRpc"] += ["z_sendmany", "dumpprivkey", "backupwallet", "stop", "addnode"]
    before = len(read_only.zcashd.received)
    try:
        write_user_table(directory, tampered)
        for method in ("z_sendmany", "dumpprivkey", "backupwallet", "stop", "addnode"):
            status, body = read_only.zcashd_rpc.call({"method": method, "id": 1})
            assert status == 200 and body["error"]["code"] == -32601, method
        assert len(read_only.zcashd.received) == before
    finally:
        write_user_table(directory, original)


def test_with_the_wallet_on_only_a_user_who_names_a_wallet_method_calls_it(engine: Engine, tmp_path: Path) -> None:
    file = zcashd_access(wallet_user=["getblockcount", "z_sendmany"])
    with serving(tmp_path, file, wallet=True, engine=engine) as pair:
        status, body = pair.zcashd_rpc.call({"method": "z_sendmany", "params": [], "id": 9}, user="batcher")
        assert (status, answered(body)) == (200, "z_sendmany")
        # The instance lists it, but `exchange` has no list of its own: no wallet method by default.
        assert pair.zcashd_rpc.call({"method": "z_sendmany", "id": 9})[1]["error"]["code"] == -32601
        # The never class stays refused with the wallet on, whatever the table says.
        tampered = read_user_table(pair.node_rpc.config_dir)
        for entry in tampered["users"].values():
            entry["zcashdRpc"] += ["backupwallet", "z_exportwallet"]
        write_user_table(pair.node_rpc.config_dir, tampered)
        for method in ("backupwallet", "z_exportwallet"):
            assert pair.zcashd_rpc.call({"method": method, "id": 1}, user="batcher")[1]["error"]["code"] == -32601
        assert [json.loads(raw)["method"] for raw in pair.zcashd.received] == ["z_sendmany"]


def test_without_a_sidecar_the_zcashd_path_is_not_the_nodes(tmp_path: Path) -> None:
    with serving(tmp_path, zcashd_access(), zcashd=False) as pair:
        status, body = pair.zcashd_rpc.call({"method": "getblockcount", "id": 1})
        assert status == 404 and "no zcashd" in body["error"]["message"]
        assert pair.node.received == []


# ---- the plan: the sidecar reachable from its gateway only ---------------------------------------------------------

NAMESPACE = "zbi-testnet"


@pytest.fixture(scope="module")
def compat_plan(plan_stack: PlanStack) -> Plan:
    # The dev stack's `testnet` instance (it has an access file, so a gateway) as a Zakura instance with the sidecar.
    merge = {"zbi:instances": {"testnet": {"node": {"kind": "zakurad", "zcashdCompat": {}}}}}
    return plan_stack("dev", merge=merge)


def model_pod(workload: dict[str, Any], address: str) -> Pod:
    template = workload["spec"]["template"]
    ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    return Pod(
        NAMESPACE, template["metadata"]["labels"], address=address, ports=ports, name=workload["metadata"]["name"]
    )


def test_the_gateway_reaches_the_sidecars_rpc_and_nothing_else_does(compat_plan: Plan) -> None:
    node = model_pod(one(compat_plan, "StatefulSet", "zakurad", NAMESPACE), "10.20.43.10")
    gateway = model_pod(one(compat_plan, "Deployment", "gateway", NAMESPACE), "10.20.43.11")
    wallet = model_pod(one(compat_plan, "StatefulSet", "lightwalletd", NAMESPACE), "10.20.43.12")
    policies = objects(compat_plan, "NetworkPolicy")
    assert node.ports[ZCASHD_RPC_PORT_NAME] == RPC_PORT
    assert reachable(policies, gateway, node, ZCASHD_RPC_PORT_NAME)
    for stranger in (wallet, Pod("other", {}, address="10.20.40.7"), outside("203.0.113.7"), outside("10.20.0.5")):
        assert not reachable(policies, stranger, node, ZCASHD_RPC_PORT_NAME), stranger
    # The node's RPC Service carries the port the gateway's nginx.conf names.
    service = one(compat_plan, "Service", "zakurad-rpc", NAMESPACE)
    assert {"name": ZCASHD_RPC_PORT_NAME, "port": RPC_PORT, "targetPort": ZCASHD_RPC_PORT_NAME} in service["spec"][
        "ports"
    ]
    conf = next(
        c["data"]["nginx.conf"] for c in objects(compat_plan, "ConfigMap", NAMESPACE) if "nginx.conf" in c["data"]
    )
    assert f"server zakurad-rpc.{NAMESPACE}.svc.cluster.local:{RPC_PORT};" in conf


def test_the_sidecar_admits_the_gateway_with_the_nodes_credentials(compat_plan: Plan) -> None:
    containers = pod_spec(one(compat_plan, "StatefulSet", "zakurad", NAMESPACE))["containers"]
    zcashd = next(c for c in containers if c["name"] == "zcashd")
    args = zcashd["args"]
    assert "-rpcallowip=0.0.0.0/0" in args
    # Credentials from the instance's Secret, expanded by the kubelet: never a value in the pod spec.
    env = {e["name"]: e for e in zcashd["env"]}
    for name in CREDENTIAL_ENV.values():
        assert f"$({name})" in " ".join(args)
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == RPC_SECRET and "value" not in env[name]
    # The pinning stays last (zcashd takes the last occurrence of a single-valued argument).
    assert args[-1] == "-discover=0"


@pytest.mark.slow
def test_the_compat_instance_behind_its_gateway_passes_checkov(compat_plan: Plan, tmp_path: Path) -> None:
    """The sidecar's credentials as Secret-backed environment (kubelet-expanded arguments) carry checkov's skip with
    its reason; every other check of the instance's manifests passes."""
    import subprocess

    from tests.test_manifests import checkov
    from zbi_infra.plan import render

    render.write(compat_plan, tmp_path / "out")
    instance = tmp_path / "instance"
    instance.mkdir()
    for manifest in (tmp_path / "out" / "manifests").rglob("*.yaml"):
        if f"namespace: {NAMESPACE}" in manifest.read_text():
            (instance / manifest.name).write_text(manifest.read_text())
    result = subprocess.run(
        [*checkov(), "-d", str(instance), "--framework", "kubernetes", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    report = json.loads(result.stdout)
    assert report["summary"]["failed"] == 0, [
        (c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]
    ]
    assert report["summary"]["passed"] > 20


# ---- `zbi access` with zcashd lists ------------------------------------------------------------------------------


def test_access_commands_grant_and_list_zcashd_methods(tmp_path: Path, capsys) -> None:
    import shutil

    from tests.conftest import ROOT
    from zbi_infra.cli import main

    for name in ["Pulumi.yaml", *(p.name for p in ROOT.glob("Pulumi.*.yaml"))]:
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "access", tmp_path / "access")
    stack = tmp_path / "Pulumi.dev.yaml"
    text = stack.read_text()
    assert text.count("        kind: zebrad\n") == 1
    stack.write_text(text.replace("        kind: zebrad\n", "        kind: zakurad\n        zcashdCompat: {}\n"))
    access = tmp_path / "access/testnet.yaml"
    access.write_text(access.read_text() + "\nzcashdRpc:\n  methods: [getblockcount, getrawtransaction]\n")

    def zbi(*args: str) -> int:
        return main([*args, "--project-dir", str(tmp_path)])

    assert zbi("access", "create-key", "testnet", "explorer", "--zcashd-rpc", "getblockcount") == 0
    capsys.readouterr()
    assert zbi("access", "list", "testnet", "--json") == 0
    rows = {row["user"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["explorer"]["zcashdRpc"] == ["getblockcount"] and rows["(anonymous)"]["zcashdRpc"] == []
    before = access.read_text()
    # Not exposed by the instance (and a wallet method on a zcashd without a wallet): refused, nothing written.
    assert zbi("access", "create-key", "testnet", "spender", "--zcashd-rpc", "z_sendmany") == 2
    assert "zcashdRpc: z_sendmany not in zcashdRpc.methods" in capsys.readouterr().err
    assert access.read_text() == before
    access.write_text(before.replace("[getblockcount, getrawtransaction]", "[getblockcount, z_sendmany]"))
    assert zbi("access", "check", "testnet") == 2
    assert "runs its zcashd without a wallet, so z_sendmany cannot be exposed" in capsys.readouterr().err
