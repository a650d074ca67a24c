"""Zakura (`node.kind: zakurad`): its config from its own schema, its image, probes, metrics, pruning and lifecycle,
each checked against the release's evidence (tests/fixtures/upstream/zakura/releases/, tools/add_release.py)."""

from __future__ import annotations

import json
import re
import tomllib
from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from tests.conftest import UPSTREAM, PlanStack
from tests.k8s_objects import one, pod_spec
from zbi_infra.config.instance import InstanceConfig, Network
from zbi_infra.monitoring.alerts import FULL_NODES, alert_rules
from zbi_infra.monitoring.component import scraped_workloads
from zbi_infra.plan.engine import Plan
from zbi_infra.release_check import instance_release_problems
from zbi_infra.releases import ZAKURAD, release_table
from zbi_infra.render.zakurad import CONFIG_PATH, DATA_DIR, render_zakurad_toml, zakurad_command

EVIDENCE = json.loads((UPSTREAM / f"zakura/releases/v{ZAKURAD.tag}.json").read_text())
DEFAULT_CONFIG = tomllib.loads((UPSTREAM / f"zakura/releases/v{ZAKURAD.tag}.toml").read_text())
VARIANTS = {
    "zakura": {"network": "testnet", "node": {"kind": "zakurad"}, "lightwallet": {"kind": "lightwalletd"}},
    "pruned": {
        "network": "mainnet",
        "node": {"kind": "zakurad", "pruning": {"txRetentionBlocks": 20000}},
        "lightwallet": {"kind": "none"},
    },
}


@pytest.fixture(scope="module")
def plan(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev", merge={"zbi:instances": VARIANTS})


def zakurad(plan: Plan, namespace: str) -> dict[str, Any]:
    containers = pod_spec(one(plan, "StatefulSet", "zakurad", namespace))["containers"]
    return next(c for c in containers if c["name"] == "zakurad")


def rendered(network: Network, **options: Any) -> dict[str, Any]:
    return tomllib.loads(render_zakurad_toml(network, **options))


@pytest.mark.parametrize("network", [Network.MAINNET, Network.TESTNET])
@pytest.mark.parametrize("retention", [None, 20_000])
def test_every_rendered_key_is_a_field_of_zakurads_config_structs(network: Network, retention: int | None) -> None:
    """ZakuradConfig's sections all deny unknown fields: a key outside them stops zakurad at start."""
    config = rendered(network, prune_retention_blocks=retention)
    schema = EVIDENCE["config_keys"]
    for section, keys in config.items():
        assert set(keys) <= set(schema[section]), (section, set(keys) - set(schema[section]))
    # The same sections the release's generated default config has (crates/zakurad/tests/common/configs/).
    assert set(config) <= set(DEFAULT_CONFIG)


def test_storage_mode_uses_the_two_spellings_zakura_deserializes() -> None:
    """`StorageModeVisitor` (crates/zakura-state/src/config.rs) takes "archive", "pruned", or a one-key table
    {pruned = {tx_retention = N}} (PruningConfig, deny_unknown_fields); tx_retention below 10,000 is refused at
    start on Mainnet and Testnet (MIN_PRUNING_RETENTION)."""
    assert rendered(Network.MAINNET)["state"]["storage_mode"] == "archive"
    assert rendered(Network.MAINNET, prune_retention_blocks=20_000)["state"]["storage_mode"] == {
        "pruned": {"tx_retention": 20_000}
    }
    with pytest.raises(ValidationError, match="greater than or equal to 10000"):
        InstanceConfig.model_validate(
            {"network": "mainnet", "node": {"kind": "zakurad", "pruning": {"txRetentionBlocks": 9_999}}}
        )


def test_the_p2p_stack_is_pinned_to_the_zcash_tcp_protocol_zbi_models() -> None:
    # P2pStack (crates/zakura-network/src/config.rs) is lowercase: default | legacy | zakura | dual.
    for network in (Network.MAINNET, Network.TESTNET):
        assert rendered(network)["network"]["p2p_stack"] == "legacy"
        assert rendered(network)["network"]["identity_dir"].startswith(DATA_DIR)


def test_zakurad_runs_its_binary_as_the_images_user_with_zebras_probes(plan: Plan) -> None:
    main = zakurad(plan, "zbi-zakura")
    assert main["image"] == f"zakuracore/zakura:{ZAKURAD.tag}"
    assert main["command"] == zakurad_command() == ["zakurad", "-c", CONFIG_PATH, "start"]
    assert EVIDENCE["image"] == {
        "user": ZAKURAD.user,
        "uid": ZAKURAD.uid,
        "binary": ZAKURAD.binary,
        "entrypoint": ["entrypoint.sh"],
    }
    assert pod_spec(one(plan, "StatefulSet", "zakurad", "zbi-zakura"))["securityContext"]["runAsUser"] == ZAKURAD.uid
    # /healthy and /ready: crates/zakurad/src/components/health.rs routes both; the [health] keys are Zebra's.
    assert main["startupProbe"]["httpGet"]["path"] == "/healthy"
    assert main["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert {"listen_addr", "ready_max_blocks_behind", "ready_max_tip_age"} <= set(EVIDENCE["config_keys"]["health"])
    mounts = {m["mountPath"] for m in main["volumeMounts"]}
    assert DATA_DIR in mounts and "/etc/zakura" in mounts
    config_map = one(plan, "ConfigMap", "zakurad-config", "zbi-pruned")
    assert (
        "storage_mode = { pruned = { tx_retention = 20000 } }" in config_map["data"]["zakurad.toml"].replace("\n", " ")
        or "[state.storage_mode.pruned]" in config_map["data"]["zakurad.toml"]
    )


def exprs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["expr"]] if "expr" in node else [e for v in node.values() for e in exprs(v)]
    return [e for v in node for e in exprs(v)] if isinstance(node, list) else []


def test_the_alerts_read_metrics_zakura_registers(plan: Plan) -> None:
    """The full-node alerts read Zebra's metric names; Zakura's sources at the tag register the same ones."""
    instances = {name: InstanceConfig.model_validate(v) for name, v in VARIANTS.items()}
    used = set()
    for expr in exprs(alert_rules(instances, probed_endpoints=False)):
        used |= set(re.findall(r"\b(zcash_[a-z_]+|sync_[a-z_]+|state_[a-z_]+)\s*\{", expr))
    assert {"zcash_chain_verified_block_height", "zcash_net_peers"} <= used
    assert used <= set(EVIDENCE["metrics"]), used - set(EVIDENCE["metrics"])
    # Zakura's pods are scraped (a PodMonitor for the full node) and their StatefulSet counts as a full node.
    assert ("full-node", "metrics") in [w[:2] for w in scraped_workloads("zakura", instances["zakura"])]
    assert re.fullmatch(FULL_NODES, "zakurad")


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        (
            {"network": "mainnet", "node": {"kind": "zakurad", "pruning": {}}},
            "a pruned zakurad cannot serve the block bodies",
        ),
        (
            {
                "network": "mainnet",
                "node": {"kind": "zakurad", "pruning": {}, "archive": True},
                "lightwallet": {"kind": "none"},
            },
            "an archive instance keeps every historical transaction",
        ),
        ({"network": "mainnet", "node": {"pruning": {}}, "lightwallet": {"kind": "none"}}, "only Zakura prunes"),
        ({"network": "regtest", "node": {"kind": "zakurad"}}, "not offered on regtest"),
        (
            {"network": "testnet", "node": {"kind": "zakurad", "extraOptions": {"state.storage_mode": "pruned"}}},
            "is set by zBI",
        ),
        (
            {"network": "testnet", "node": {"kind": "zakurad", "extraOptions": {"network.p2p_stak": "dual"}}},
            "zakurad rejects 'network.p2p_stak' at start (deny_unknown_fields). Fix: did you mean 'p2p_stack'?",
        ),
    ],
)
def test_zakura_instances_that_cannot_work_are_refused(instance: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        InstanceConfig.model_validate(instance)
    assert expected in str(caught.value) and "Fix:" in str(caught.value)


def test_zakura_keys_zebra_lacks_are_accepted_only_for_zakurad() -> None:
    InstanceConfig.model_validate(
        {"network": "testnet", "node": {"kind": "zakurad", "extraOptions": {"mempool.max_transaction_bytes": 100000}}}
    )
    with pytest.raises(ValidationError, match=r"zebrad rejects 'mempool\.max_transaction_bytes'"):
        InstanceConfig.model_validate(
            {"network": "testnet", "node": {"extraOptions": {"mempool.max_transaction_bytes": 1}}}
        )


def test_zakuras_40_day_window_on_mainnet() -> None:
    table = release_table()["zakurad"]
    newest = table.releases[ZAKURAD.tag]
    assert newest.eos_after_days == 40 and newest.end_of_support == date(2026, 9, 23)
    config = InstanceConfig.model_validate({"network": "mainnet", "node": {"kind": "zakurad"}})
    found = instance_release_problems("z", config, date(2026, 9, 1))
    assert not found.errors and "zakurad 1.2.0 stops on Mainnet around 2026-09-23 (22 days)" in found.warnings[0]
    found = instance_release_problems("z", config, date(2026, 11, 30))
    assert "zakurad 1.2.0 reached its Mainnet end of support on about 2026-09-23" in found.errors[0]
    assert "tools/add_release.py --kind zakurad" in found.errors[0]
    assert "crates/zakurad/src/components/sync/end_of_support.rs" in found.errors[0]
    older = InstanceConfig.model_validate(
        {"network": "mainnet", "node": {"kind": "zakurad", "image": {"tag": "1.1.1"}}}
    )
    assert (
        instance_release_problems("z", older, date(2026, 9, 18))
        .errors[0]
        .endswith("Fix: set node.image.tag: 1.2.0 (supported on Mainnet until about 2026-09-23)")
    )
    v_tag = InstanceConfig.model_validate(
        {"network": "testnet", "node": {"kind": "zakurad", "image": {"tag": "v1.2.0"}}}
    )
    assert (
        "zakuracore/zakura publishes its images without the git tag's 'v'"
        in (instance_release_problems("z", v_tag, date(2026, 9, 1)).errors[0])
    )


# ---- zcashd-compatibility mode ------------------------------------------------------------------------------------

COMPAT = json.loads((UPSTREAM / "zakura/zcashd-compat.json").read_text())


@pytest.fixture(scope="module")
def compat(plan_stack: PlanStack) -> Plan:
    return plan_stack(
        "dev",
        merge={
            "zbi:instances": {
                "compat": {"network": "mainnet", "node": {"kind": "zakurad", "zcashdCompat": {}}},
                "desk": {"network": "testnet", "node": {"kind": "zakurad", "zcashdCompat": {"wallet": True}}},
            }
        },
    )


def sidecar(plan: Plan, namespace: str) -> dict[str, Any]:
    containers = pod_spec(one(plan, "StatefulSet", "zakurad", namespace))["containers"]
    return next(c for c in containers if c["name"] == "zcashd")


def test_the_sidecar_runs_with_the_arguments_zakuras_supervisor_passes(compat: Plan) -> None:
    for namespace, network, p2p in (("zbi-compat", "Mainnet", 8233), ("zbi-desk", "Testnet", 18233)):
        zcashd = sidecar(compat, namespace)
        assert zcashd["image"] == COMPAT["image_tag"].replace("${image_version}", ZAKURAD.tag)
        assert zcashd["command"] == [COMPAT["image_binary"]]
        args = zcashd["args"]
        # supervisor.rs: -datadir, the network flag, -printtoconsole, the extra arguments, -allowdeprecated…, then
        # the peer pinning, last, because zcashd takes the last occurrence of a single-valued argument.
        assert args[0].startswith("-datadir=/var/lib/zakura/")
        assert args[1 : 1 + len(COMPAT["network_args"][network])] == COMPAT["network_args"][network]
        assert COMPAT["always"][0] in args
        pinning = [a.replace("<zakura p2p addr>", f"127.0.0.1:{p2p}") for a in COMPAT["pinning_args_after_extra"]]
        assert args[-len(pinning) :] == pinning
        assert not any(a.startswith(("-addnode", "-seednode", "-bind", "-whitebind")) for a in args)
        # One pod: the sidecar reaches its own zakurad on loopback, and zakurad gossips blocks to that address.
        toml = tomllib.loads(one(compat, "ConfigMap", "zakurad-config", namespace)["data"]["zakurad.toml"])
        assert toml["zcashd_compat"] == {
            "enabled": True,
            "manage_zcashd": False,
            "block_gossip_peer_ips": ["127.0.0.1"],
        }
        assert set(toml["zcashd_compat"]) <= set(COMPAT["config_keys"])
        assert pod_spec(one(compat, "StatefulSet", "zakurad", namespace))["securityContext"]["runAsUser"] == ZAKURAD.uid


def test_the_wallet_is_off_unless_a_private_instance_turns_it_on(compat: Plan) -> None:
    off = sidecar(compat, "zbi-compat")["args"]
    assert "-disablewallet=1" in off and "-allowdeprecated=none" in off
    on = sidecar(compat, "zbi-desk")["args"]
    assert "-disablewallet=1" not in on
    assert [a.split("=", 1)[1] for a in on if a.startswith("-allowdeprecated=")] == COMPAT["wallet_deprecated_features"]
    with pytest.raises(ValidationError, match="zBI allows it only on a private instance"):
        InstanceConfig.model_validate(
            {
                "network": "mainnet",
                "node": {"kind": "zakurad", "zcashdCompat": {"wallet": True}},
                "endpoints": {"publicGrpc": True, "hostnames": ["lwd.example.org"]},
            }
        )


def test_the_sidecars_rpc_is_reachable_from_inside_its_pod_only(compat: Plan) -> None:
    from zbi_infra.render.zcashd_compat import RPC_PORT

    args = sidecar(compat, "zbi-compat")["args"]
    assert "-rpcallowip=127.0.0.1" in args and f"-rpcport={RPC_PORT}" in args
    for obj in compat.kubernetes_objects():
        if obj.inputs.get("metadata", {}).get("namespace") != "zbi-compat":
            continue
        if obj.type.endswith(":Service"):
            assert RPC_PORT not in [p.get("port") for p in obj.inputs["spec"].get("ports", [])], obj.name
        if obj.type.endswith(":NetworkPolicy"):
            assert f"'port': {RPC_PORT}" not in str(obj.inputs["spec"]), obj.name


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"kind": "zakurad", "zcashdCompat": {}, "pruning": {}}, "a pruned zakurad cannot serve"),
        ({"zcashdCompat": {}}, "node.zcashdCompat is Zakura's mode"),
    ],
)
def test_compat_instances_that_cannot_work_are_refused(node: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        InstanceConfig.model_validate({"network": "mainnet", "node": node, "lightwallet": {"kind": "none"}})


def test_zakura_follows_the_mainnet_upgrades_zebra_follows() -> None:
    """Why Mainnet is allowed: Zakura v1.2.0 activates every Mainnet upgrade through NU6.3 (Ironwood) at Zebra
    v6.3.0's heights with the same consensus branch id (each repository's zebra-chain/zakura-chain parameters)."""
    zakura = json.loads((UPSTREAM / "zakura/network-upgrades.json").read_text())
    zebra = json.loads((UPSTREAM / "zebra/network-upgrades.json").read_text())
    assert zakura == zebra
    assert zakura["mainnet_activation_heights"]["NU6_3"] == 3_428_143


def test_zakurad_gets_no_environment_override_of_its_config(plan: Plan) -> None:
    # The image's entrypoint translates ZAKURA_* variables into config; zBI runs zakurad directly and sets none.
    for namespace in ("zbi-zakura", "zbi-pruned"):
        env = {e["name"] for e in zakurad(plan, namespace).get("env", [])}
        assert env == {"HOME"}, env


def test_supplied_release_data_for_zakura_uses_its_40_day_window() -> None:
    """Real data: v1.3.0-rc1 (a pre-release, so not in the table) has ESTIMATED_RELEASE_HEIGHT 3,457,227 and was tagged
    2026-08-21 (crates/zakurad/src/components/sync/end_of_support.rs at the tag)."""
    config = InstanceConfig.model_validate(
        {
            "network": "mainnet",
            "node": {
                "kind": "zakurad",
                "image": {"tag": "1.3.0-rc1"},
                "release": {
                    "estimatedReleaseHeight": 3_457_227,
                    "released": "2026-08-21",
                    "source": "https://github.com/zakura-core/zakura/blob/v1.3.0-rc1/crates/zakurad/src/components/"
                    "sync/end_of_support.rs",
                },
            },
        }
    )
    found = instance_release_problems("z", config, date(2026, 9, 1))
    assert not found.errors
    found = instance_release_problems("z", config, date(2026, 10, 1))
    assert "zakurad 1.3.0-rc1 reached its Mainnet end of support on about 2026-09-30" in found.errors[0]


def test_zakurad_gets_the_readiness_thresholds_zebrad_gets() -> None:
    """Zakura keeps Zebra's [health] section: the mainnet defaults sized by the readiness model, and an operator's
    node.readiness, reach zakurad.toml exactly as they reach zebrad.toml (a fork left on zebrad's old 2-block default
    would empty the RPC Service in every long block gap)."""
    from zbi_infra.config.health import ReadinessConfig
    from zbi_infra.render.zebrad import render_zebrad_toml

    for readiness in (None, ReadinessConfig(ready_max_blocks_behind=30, ready_max_tip_age="40m")):
        zakura = tomllib.loads(render_zakurad_toml(Network.MAINNET, readiness=readiness))["health"]
        zebra = tomllib.loads(render_zebrad_toml(Network.MAINNET, readiness=readiness))["health"]
        for key in ("ready_max_blocks_behind", "ready_max_tip_age"):
            assert zakura[key] == zebra[key]
    assert zakura["ready_max_blocks_behind"] == 30 and zakura["ready_max_tip_age"] == "40m"
    assert tomllib.loads(render_zakurad_toml(Network.MAINNET))["health"]["ready_max_blocks_behind"] >= 10
