"""gateway.engine, the operator's choice of the gateway's scripting engine, end to end in the plan: lua (the default)
runs OpenResty's image with the Lua modules (the history cache's included), njs runs nginx-unprivileged with the .js
modules, and an unknown engine is refused before anything is written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, PlanStack
from tests.k8s_objects import objects, one, pod_spec
from tests.stack_input import DEV, TODAY, config_with, project_copy, rejection, zbi
from tests.test_gateway import dev_testnet_gateway_files
from zbi_infra.config.image import ImageConfig
from zbi_infra.config.stack import load_stack_config
from zbi_infra.instances import show
from zbi_infra.kube import image_ref
from zbi_infra.node.gateway import CONFIG_HASH_ANNOTATION
from zbi_infra.plan.engine import Plan
from zbi_infra.releases import GATEWAY, OPENRESTY
from zbi_infra.render.gateway import POD_CONFIG_DIR, GatewayPaths
from zbi_infra.render.gateway_cache import GatewayCache
from zbi_infra.render.gateway_engines import LUA_MODULES, lua_modules

NS = "zbi-testnet"
LUA = {"zbi:instances": {"testnet": {"gateway": {"engine": "lua"}}}}
NJS = {"zbi:instances": {"testnet": {"gateway": {"engine": "njs"}}}}


@pytest.fixture(scope="module")
def njs(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev", merge=NJS)


@pytest.fixture(scope="module")
def lua(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev")


def gateway_pod(plan: Plan) -> dict[str, Any]:
    return pod_spec(one(plan, "Deployment", "gateway", NS))


def nginx_container(plan: Plan) -> dict[str, Any]:
    (container,) = [c for c in gateway_pod(plan)["containers"] if c["name"] == "gateway"]
    return container


def config_data(plan: Plan) -> dict[str, str]:
    return one(plan, "ConfigMap", "gateway-config", NS)["data"]


def test_lua_runs_openresty_as_nobody_with_the_same_flags_as_njs(njs: Plan, lua: Plan) -> None:
    container = nginx_container(lua)
    assert container["image"] == image_ref(OPENRESTY.repository, OPENRESTY.tag, None)
    assert container["image"].startswith("openresty/openresty:1.27.1.2-")
    # OpenResty's own nginx, by its path (the image's PATH is not the kubelet's), with njs's flags and config file.
    assert container["command"][0] == "/usr/local/openresty/nginx/sbin/nginx"
    assert container["command"][1:] == nginx_container(njs)["command"][1:]
    assert container["command"][1:] == ["-e", "stderr", "-c", f"{POD_CONFIG_DIR}/nginx.conf", "-g", "daemon off;"]
    # The image names no USER (it would run as root): Debian's nobody, for the pod and the container alike.
    assert gateway_pod(lua)["securityContext"]["runAsUser"] == 65534 == OPENRESTY.uid
    assert container["securityContext"]["runAsUser"] == 65534
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # A uid above 10000 needs no CKV_K8S_40 exemption; nginx-unprivileged's 101 does.
    lua_skips = one(lua, "Deployment", "gateway", NS)["metadata"]["annotations"]
    njs_skips = one(njs, "Deployment", "gateway", NS)["metadata"]["annotations"]
    assert not [v for v in lua_skips.values() if v.startswith("CKV_K8S_40")]
    assert [v for v in njs_skips.values() if v.startswith("CKV_K8S_40")]
    # Everything nginx writes is under the writable /tmp, as with njs.
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/tmp"}


def test_lua_puts_the_lua_modules_in_the_config_map_and_no_javascript(njs: Plan, lua: Plan) -> None:
    data = config_data(lua)
    assert set(LUA_MODULES) <= set(data)
    assert not [name for name in data if name.endswith(".js")]
    conf = data["nginx.conf"]
    assert "content_by_lua_block { zbi.json_rpc() }" in conf
    # OpenResty has lua-nginx-module built in: loading a dynamic module would fail at start.
    assert "load_module" not in conf and "js_import" not in conf
    # The same files the renderer makes for the engine, from the same access file and upstreams.
    assert data == dev_testnet_gateway_files("lua")
    # A change of engine is a change of what nginx reads at start: the pods roll.
    annotations = [pod["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
                   for pod in (one(njs, "Deployment", "gateway", NS), one(lua, "Deployment", "gateway", NS))]  # fmt: skip
    assert annotations[0] != annotations[1]


def test_the_rpc_guard_and_the_metrics_sidecar_keep_their_images_under_lua(njs: Plan, lua: Plan) -> None:
    def images(plan: Plan) -> set[str]:
        return {c["image"] for kind in ("StatefulSet", "Deployment") for w in objects(plan, kind, NS)
                for c in pod_spec(w)["containers"] if c["name"] != "gateway"}  # fmt: skip

    assert image_ref(GATEWAY.repository, GATEWAY.tag, None) in images(lua)  # the RPC guard beside zebrad
    assert images(lua) == images(njs)


def test_lua_is_the_default_and_naming_it_changes_nothing(lua: Plan, plan_stack: PlanStack) -> None:
    container = nginx_container(lua)
    assert container["image"] == image_ref(OPENRESTY.repository, OPENRESTY.tag, None)
    assert container["command"][0] == OPENRESTY.binary and container["securityContext"]["runAsUser"] == OPENRESTY.uid
    data = config_data(lua)
    assert "zbi_gateway.lua" in data and not [name for name in data if name.endswith(".js")]
    named = plan_stack("dev", merge=LUA)
    assert one(named, "Deployment", "gateway", NS) == one(lua, "Deployment", "gateway", NS)
    assert config_data(named) == data


def test_njs_when_named_runs_nginx_unprivileged_with_the_javascript_modules(njs: Plan) -> None:
    container = nginx_container(njs)
    assert container["image"] == image_ref(GATEWAY.repository, GATEWAY.tag, None)
    assert container["command"][0] == "nginx" and container["securityContext"]["runAsUser"] == GATEWAY.uid
    data = config_data(njs)
    assert "gateway.js" in data and not [name for name in data if name.endswith(".lua")]
    assert data == dev_testnet_gateway_files("njs")


def test_the_gateways_image_override_applies_to_openresty(plan_stack: PlanStack) -> None:
    digest = "sha256:" + "ab" * 32
    override = {"gateway": {"engine": "lua", "image": {"tag": "1.27.1.2-11-bookworm", "digest": digest}}}
    plan = plan_stack("dev", merge={"zbi:instances": {"testnet": override}})
    assert nginx_container(plan)["image"] == f"openresty/openresty:1.27.1.2-11-bookworm@{digest}"
    assert nginx_container(plan)["command"][0] == OPENRESTY.binary


def test_openresty_is_pinned_by_the_digest_table_and_shown_with_its_digest(
    plan_stack: PlanStack, digest_table: dict[str, str]
) -> None:
    """tools/pin_images.py resolves what default_images lists: OpenResty with the others, so requireImageDigests
    holds for a Lua gateway as for an njs one."""
    reference = f"{OPENRESTY.repository}:{OPENRESTY.tag}"
    assert reference in digest_table
    plan = plan_stack("dev", merge=LUA)
    assert nginx_container(plan)["image"] == f"{reference}@{digest_table[reference]}"
    config = load_stack_config(config_with(zbi__instances={"testnet": {"gateway": {"engine": "lua"}}}), today=TODAY)
    shown = show(config, "testnet", ROOT / "Pulumi.dev.yaml")["gateway"]["image"]
    assert (shown["repository"], shown["tag"], shown["digest"]) == (
        OPENRESTY.repository,
        OPENRESTY.tag,
        digest_table[reference],
    )


def test_zbi_plan_refuses_an_unknown_engine_with_exit_2_before_writing_anything(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    testnet = {**DEV["zbi:instances"]["testnet"], "gateway": {"engine": "luajit"}}
    config = {**DEV, "zbi:instances": {**DEV["zbi:instances"], "testnet": testnet}}
    (project / "Pulumi.bad.yaml").write_text(yaml.safe_dump({"config": config}))
    result = zbi("plan", "bad", "--out", str(tmp_path / "out"), cwd=project, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    expected = "zbi:instances.testnet.gateway.engine: Input should be 'njs' or 'lua'"
    assert expected in result.stderr and "Fix:" in result.stderr, result.stderr
    assert result.stdout == "" and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("gateway", "refused"),
    [
        # A stack written when njs was the default: its nginx image would meet Lua's directives and crash at start.
        ({"image": {"repository": "nginxinc/nginx-unprivileged", "tag": "1.27.4"}}, "but engine is lua (the default"),
        ({"image": {"repository": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mirror/nginx"}}, "engine is lua (the"),
        ({"engine": "njs", "image": {"repository": "openresty/openresty"}}, "but engine is njs. Fix: set engine: lua"),
        ({"engine": "njs", "image": {"repository": "nginxinc/nginx-unprivileged", "tag": "1.27.5"}}, None),
        ({"engine": "lua", "image": {"repository": "registry.example.org/openresty", "tag": "1.27.1.2-13"}}, None),
        # A version alone, from a stack of 0.1.0's: nginx's tag and digest, which OpenResty's repository would not hold.
        ({"image": {"tag": "1.27.4", "digest": "sha256:" + "ab" * 32}}, "without image.repository names a version"),
        ({"engine": "lua", "image": {"tag": "1.27.1.2-11-bookworm"}}, None),
        # nginx.conf's `http2 on;` needs nginx 1.25.1: an older tag, of either kind, would not start.
        ({"engine": "njs", "image": {"tag": "1.24.0"}}, "carries nginx 1.24.0, older than 1.25.1"),
        ({"engine": "lua", "image": {"tag": "1.21.4.1-0-bookworm"}}, "carries nginx 1.21.4, older than 1.25.1"),
        ({"engine": "njs", "image": {"tag": "1.30.4-alpine"}}, None),
        ({"engine": "njs", "image": {"tag": "stable"}}, None),
    ],
)
def test_an_image_of_the_other_engines_kind_is_refused_naming_the_fix(
    gateway: dict[str, Any], refused: str | None
) -> None:
    config = config_with(zbi__instances={"testnet": {"gateway": gateway}})
    if refused is None:
        loaded = load_stack_config(config, today=TODAY).instances["testnet"].gateway
        assert loaded.image == ImageConfig(**gateway["image"])
        return
    problems = rejection(config)
    assert "zbi:instances.testnet.gateway" in problems and refused in problems, problems
    assert "Fix: " in problems


@pytest.mark.parametrize("cache", [{"enabled": True}, {"enabled": False}], ids=["cache-on", "cache-off"])
def test_lua_renders_the_history_cache_when_it_is_on(cache: dict[str, Any], plan_stack: PlanStack) -> None:
    """The cache has a Lua module as it has an njs one: a history instance on Lua gets it enabled, its filler and
    its proxy cache in nginx.conf, and none of them when the cache is off."""
    merge = {"zbi:instances": {"testnet": {"gateway": {"engine": "lua"}, "history": {"cache": cache}}}}
    data = config_data(plan_stack("dev", merge=merge))
    enabled = cache["enabled"]
    assert ("local ENABLED = true" in data["zbi_cache.lua"]) is enabled
    assert ("content_by_lua_block { zbi_cache.fill() }" in data["nginx.conf"]) is enabled
    assert ("proxy_cache zbi_history;" in data["nginx.conf"]) is enabled
    assert not [name for name in data if name.endswith(".js")]


@pytest.mark.parametrize("cached", [False, True], ids=["no-cache", "history-cache"])
def test_the_lua_modules_have_no_placeholder_left(cached: bool) -> None:
    """Each placeholder is filled in the module that holds it (a left one would be a Lua syntax error at start, or
    worse, a string: a path such as the node's credentials' read as `__UPSTREAM_AUTH__`)."""
    paths = GatewayPaths(config_dir="/etc/zbi-gateway", upstream_auth_file="/run/secrets/node-rpc")
    cache = GatewayCache(1, 1, 1) if cached else None
    modules = lua_modules(paths, history_cache=cache)
    assert set(modules) == set(LUA_MODULES)
    assert {name: re.findall(r"__[A-Z_]+__", text) for name, text in modules.items()} == {name: [] for name in modules}
    assert '"/run/secrets/node-rpc"' in modules["zbi_splice.lua"]
    assert ("local ENABLED = true" in modules["zbi_cache.lua"]) is cached
