"""The history cache as zBI deploys it: each gateway replica's cache volume (a generic ephemeral claim of
history.cache.sizeGib), counted in the instance's quota, the keys zone added to nginx's memory, the rendered nginx.conf
sized from the configuration and accepted by the real nginx, the pack's guardrails passed. Off without `history:`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, PlanStack
from tests.k8s_objects import objects, one, pod_spec
from tests.pod_nginx import checked_by_nginx
from tests.test_policy import evaluate, resources
from zbi_infra.config.resources import memory_mib
from zbi_infra.plan.engine import Plan
from zbi_infra.render.gateway_cache import FILL_COST_ANSWERS, MAX_CACHED_ANSWER_BYTES, POD_CACHE_DIR
from zbi_infra.render.gateway_engines import ENGINES, Engine

NS = "zbi-testnet"
SIZE_GIB = 12


def with_history(plan_stack: PlanStack, engine: Engine | None = None) -> Plan:
    """dev with a history cache, on `engine` (the default's when None)."""
    testnet: dict[str, Any] = {"history": {"cache": {"sizeGib": SIZE_GIB, "keysZoneMib": 48, "fillsAtOnce": 3}}}
    if engine is not None:
        testnet["gateway"] = {"engine": engine}
    return plan_stack("dev", merge={"zbi:instances": {"testnet": testnet}})


@pytest.fixture(scope="module")
def history(plan_stack: PlanStack) -> Plan:
    return with_history(plan_stack)


@pytest.fixture(scope="module")
def plain(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev")


def gateway_pod(plan: Plan) -> dict[str, Any]:
    return pod_spec(one(plan, "Deployment", "gateway", NS))


def config_map(plan: Plan) -> dict[str, str]:
    return one(plan, "ConfigMap", "gateway-config", NS)["data"]


def cache_enabled(data: dict[str, str]) -> bool:
    """Whether the engine's cache module, shipped either way, is switched on."""
    script = data.get("gateway_cache.js") or data["zbi_cache.lua"]
    switch = re.search(r"^(?:const|local) ENABLED = (true|false);?$", script, flags=re.MULTILINE)
    assert switch, "no ENABLED switch in the cache module"
    return switch.group(1) == "true"


def test_each_replica_has_its_own_cache_volume(history: Plan, plain: Plan) -> None:
    spec = gateway_pod(history)
    (volume,) = [v for v in spec["volumes"] if "ephemeral" in v]
    claim = volume["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim["resources"]["requests"]["storage"] == f"{SIZE_GIB}Gi" and claim["accessModes"] == ["ReadWriteOnce"]
    (nginx_container,) = [c for c in spec["containers"] if c["name"] == "gateway"]
    assert {"name": volume["name"], "mountPath": POD_CACHE_DIR} in nginx_container["volumeMounts"]
    # Without history: no volume, no cache in nginx.conf, the engine's cache module shipped disabled.
    assert not [v for v in gateway_pod(plain)["volumes"] if "ephemeral" in v]
    data = config_map(plain)
    assert "proxy_cache" not in data["nginx.conf"] and cache_enabled(data) is False
    assert cache_enabled(config_map(history)) is True


def test_the_quota_and_memory_account_for_the_cache(history: Plan, plain: Plan) -> None:
    def hard(plan: Plan) -> dict[str, str]:
        return one(plan, "ResourceQuota", "instance-quota", NS)["spec"]["hard"]

    replicas = one(history, "HorizontalPodAutoscaler", "gateway", NS)["spec"]["maxReplicas"] + 1
    grown = int(hard(history)["requests.storage"].rstrip("Gi")) - int(hard(plain)["requests.storage"].rstrip("Gi"))
    claims = int(hard(history)["persistentvolumeclaims"]) - int(hard(plain)["persistentvolumeclaims"])
    # The quota's headroom grows both by its percentage: at least the claims themselves.
    assert grown >= replicas * SIZE_GIB and claims >= replicas

    def memory(plan: Plan, kind: str) -> int:
        (container,) = [c for c in gateway_pod(plan)["containers"] if c["name"] == "gateway"]
        return memory_mib(container["resources"][kind]["memory"])

    # The keys zone, and three fills of at most FILL_COST_ANSWERS answers of 4 MiB each.
    assert FILL_COST_ANSWERS * MAX_CACHED_ANSWER_BYTES == 24 * 1024 * 1024
    assert memory(history, "limits") - memory(plain, "limits") == 48 + 3 * 24
    assert memory(history, "requests") - memory(plain, "requests") == 48 + 3 * 24


@pytest.mark.parametrize("engine", ENGINES)
def test_nginx_conf_is_sized_from_the_configuration_and_accepted_by_nginx(
    engine: Engine, plan_stack: PlanStack, tmp_path: Path
) -> None:
    data = config_map(with_history(plan_stack, engine))
    conf = data["nginx.conf"]
    assert f"keys_zone=zbi_history:48m max_size={int(SIZE_GIB * 1024 * 0.85)}m" in conf
    assert "limit_conn zbi_fills 3;" in conf
    assert cache_enabled(data) is True
    checked = checked_by_nginx(data, engine, tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_the_history_plan_passes_every_guardrail(history: Plan) -> None:
    assert evaluate(resources(history)) == []
    assert objects(history, "Deployment", NS)


def test_grpc_history_is_cached_by_the_light_wallet_tier_on_its_own_volume(history: Plan) -> None:
    """The gateway does not cache gRPC (nginx's gRPC proxy has no cache): lightwalletd v0.5.3 answers GetBlock and
    GetBlockRange from its own cache of every compact block, under `<--data-dir>/db` (vendored, cited by line). So the
    history's gRPC path is cached only if that directory is a volume that outlives the pod, which this checks."""
    evidence = json.loads((ROOT / "tests/fixtures/upstream/lightwalletd/block-cache.json").read_text())
    get_block = next(f["text"] for f in evidence["facts"] if f["path"] == "common/common.go")
    first, then = evidence["cache_first"]
    assert get_block.index(first) < get_block.index(then)  # the cache is read before the node is asked
    statefulset = one(history, "StatefulSet", "lightwalletd", NS)
    (container,) = [c for c in pod_spec(statefulset)["containers"] if c["name"] == "lightwalletd"]
    (data_dir,) = [a.split("=", 1)[1] for a in container.get("args", []) + container.get("command", [])
                   if a.startswith("--data-dir=")]  # fmt: skip
    claims = {t["metadata"]["name"] for t in statefulset["spec"]["volumeClaimTemplates"]}
    mounted = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    cache_dir = f"{data_dir}/{evidence['cache_under_data_dir']}"
    holders = [path for path in mounted if cache_dir == path or cache_dir.startswith(path.rstrip("/") + "/")]
    assert holders and mounted[max(holders, key=len)] in claims, (cache_dir, mounted, claims)


def test_zainos_block_cache_lives_on_the_light_wallet_volume(plan_stack: PlanStack) -> None:
    """Zaino (fetch backend) answers GetBlock from its own compact block cache before asking the node (vendored,
    read at a commit after its 0.8.0 tag): the finalised part is a database under `storage.database.path`, which
    must be on the light-wallet StatefulSet's claim for the history's gRPC path to stay cached across restarts."""
    from zbi_infra.config.instance import Network
    from zbi_infra.render.lightwallet import zaino_config

    evidence = json.loads((ROOT / "tests/fixtures/upstream/zaino/block-cache.json").read_text())
    get_block = next(f["text"] for f in evidence["facts"] if "get_block:" in f["text"])
    first, then = evidence["cache_first"]
    assert get_block.index(first) < get_block.index(then)
    config = zaino_config(Network.TESTNET, validator_address="n:1", rpc_user="u", rpc_password="p", tls=False)
    section, table, key = evidence["database_path_key"].split(".")
    database = config[section][table][key]
    plan = plan_stack("dev", merge={"zbi:instances": {"testnet": {"lightwallet": {"kind": "zaino"},
                                                                   "history": {}}}})  # fmt: skip
    (statefulset,) = [s for s in objects(plan, "StatefulSet", NS) if "zaino" in s["metadata"]["name"]]
    (container,) = [c for c in pod_spec(statefulset)["containers"] if c["name"] == statefulset["metadata"]["name"]]
    claims = {t["metadata"]["name"] for t in statefulset["spec"]["volumeClaimTemplates"]}
    mounted = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    holders = [path for path in mounted if database == path or database.startswith(path.rstrip("/") + "/")]
    assert holders and mounted[max(holders, key=len)] in claims, (database, mounted, claims)
