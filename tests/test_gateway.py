"""The access gateway as zBI deploys it: its objects in the plan, wired to the instance's Services, Secrets and
certificate, and its pod configuration accepted by the real nginx and mtail (paths moved to a temporary directory,
cluster names to loopback)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, PlanStack
from tests.gateway_harness import mtail
from tests.k8s_objects import objects, one, pod_spec
from tests.pod_nginx import checked_by_nginx
from zbi_infra.access_keys import key_hash, new_key
from zbi_infra.config.access import PROBE_USER, instance_access_files, parse_access, read_access_file
from zbi_infra.config.instance import DEFAULT_GATEWAY_ENGINE
from zbi_infra.config.resources import memory_mib
from zbi_infra.errors import ConfigError
from zbi_infra.node.gateway import CONFIG_HASH_ANNOTATION, config_hash
from zbi_infra.plan.engine import Plan
from zbi_infra.plan.mocks import _digest
from zbi_infra.releases import GATEWAY_ENGINE_IMAGES
from zbi_infra.render import gateway_metrics
from zbi_infra.render.gateway import (
    ANONYMOUS_FILE,
    POD_CONFIG_DIR,
    POD_PATHS,
    POD_TLS_DIR,
    POD_UPSTREAM_DIR,
    GatewayUpstreams,
    is_user_file,
    spliced_batches_cap,
    users_table,
)
from zbi_infra.render.gateway_engines import ENGINES, Engine
from zbi_infra.render.gateway_nginx import pod_files

NS = "zbi-testnet"


@pytest.fixture(scope="module")
def dev(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev")


@pytest.fixture(scope="module")
def dev_per_engine(plan_stack: PlanStack) -> dict[Engine, Plan]:
    """dev's plan with each engine named, the default's the same as `dev` (test_gateway_engine_choice.py)."""
    return {
        engine: plan_stack("dev", merge={"zbi:instances": {"testnet": {"gateway": {"engine": engine}}}})
        for engine in ENGINES
    }


def containers(dev: Plan) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod_spec(one(dev, "Deployment", "gateway", NS))["containers"]}


def dev_testnet_gateway_files(engine: Engine = DEFAULT_GATEWAY_ENGINE) -> dict[str, str]:
    """The files the renderers make for dev's testnet gateway (its access file, its upstreams, the mocks' probe key)
    with `engine`: what its ConfigMap must hold."""
    expected = pod_files(
        read_access_file(ROOT / "access" / "testnet.yaml"),
        GatewayUpstreams(
            rpc="zebrad-rpc.zbi-testnet.svc.cluster.local:18232",
            grpc="lightwalletd-grpc.zbi-testnet.svc.cluster.local:9067",
            grpc_tls_name="lightwalletd-grpc.zbi-testnet.svc.cluster.local",
        ),
        max_body_bytes=256 * 1024,
        metrics_syslog=f"127.0.0.1:{gateway_metrics.SYSLOG_PORT}",
        probe_key_sha256=key_hash(_digest("dev-probe-key", "password", length=32)),  # the mocks' random key
        engine=engine,
    )
    return {**expected, gateway_metrics.PROGRAM_FILE: gateway_metrics.mtail_program()}


def test_the_config_map_holds_what_the_renderers_make_from_the_access_file(dev: Plan) -> None:
    data = one(dev, "ConfigMap", "gateway-config", NS)["data"]
    access = read_access_file(ROOT / "access" / "testnet.yaml")
    assert data == dev_testnet_gateway_files()
    assert json.loads(data[ANONYMOUS_FILE]) == users_table(access)["anonymous"]
    entries = [json.loads(text) for name, text in data.items() if is_user_file(name) and name != ANONYMOUS_FILE]
    assert len(entries) == len(access.users) + 1
    (probe,) = [u for u in entries if u["name"] == PROBE_USER]
    # The monitoring probe may make its one read-only call, and nothing else.
    assert (probe["jsonRpc"], probe["grpc"], probe["expires"]) == (["getblockchaininfo"], [], None)


def test_the_upstreams_are_the_instances_own_services_and_ports(dev: Plan) -> None:
    conf = one(dev, "ConfigMap", "gateway-config", NS)["data"]["nginx.conf"]
    services = {s["metadata"]["name"]: s for s in objects(dev, "Service", NS)}
    rpc = re.search(r"upstream zbi_rpc \{\s*server ([^:]+):(\d+);", conf)
    grpc = re.search(r"upstream zbi_grpc \{\s*server ([^:]+):(\d+);", conf)
    assert "grpc_pass grpcs://zbi_grpc;" in conf  # TLS to the light-wallet tier, on kept-alive connections
    assert rpc and grpc
    for host, port in (rpc.groups(), grpc.groups()):
        name, namespace = host.split(".")[:2]
        assert namespace == NS and int(port) in [p["port"] for p in services[name]["spec"]["ports"]], host
    # The light-wallet server's certificate is verified, for a name the instance certificate holds.
    name = re.search(r"grpc_ssl_name (\S+);", conf)
    assert name and "grpc_ssl_verify on;" in conf
    (request,) = dev.of_type("tls:index/certRequest:CertRequest")
    assert name.group(1) in request.inputs["dnsNames"]
    assert "gateway.zbi-testnet.svc.cluster.local" in request.inputs["dnsNames"]


@pytest.mark.parametrize("engine_choice", ENGINES)
def test_every_file_nginx_and_mtail_read_is_mounted_from_its_source(
    engine_choice: Engine, dev_per_engine: dict[Engine, Plan]
) -> None:
    dev = dev_per_engine[engine_choice]
    spec = pod_spec(one(dev, "Deployment", "gateway", NS))
    volumes = {v["name"]: v for v in spec["volumes"]}
    data = one(dev, "ConfigMap", "gateway-config", NS)["data"]
    secrets = {s["metadata"]["name"]: s for s in objects(dev, "Secret", NS)}

    def source(path: str, container: dict[str, Any]) -> tuple[str, str]:
        """(kind:name, key) of the volume a container reads `path` from."""
        (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
        assert mount.get("readOnly") is True, path
        volume = volumes[mount["name"]]
        key = path.removeprefix(mount["mountPath"] + "/")
        if "configMap" in volume:
            return f"ConfigMap:{volume['configMap']['name']}", key
        return f"Secret:{volume['secret']['secretName']}", key

    nginx_container, metrics = containers(dev)["gateway"], containers(dev)["metrics"]
    conf = data["nginx.conf"]
    read = re.findall(r"(?:ssl_certificate|ssl_certificate_key|grpc_ssl_trusted_certificate) (/\S+);", conf)
    read += re.findall(r"include (/\S+);", conf)
    # Scripts: njs imports them from js_path, Lua requires them from lua_package_path; both the ConfigMap's directory.
    scripts = [name for name in data if name.endswith(".js" if engine_choice == "njs" else ".lua")]
    assert scripts
    assert (
        f"js_path {POD_CONFIG_DIR};" if engine_choice == "njs" else f'lua_package_path "{POD_CONFIG_DIR}/?.lua;;";'
    ) in conf
    read += [f"{POD_CONFIG_DIR}/{name}" for name in ("nginx.conf", *scripts)]
    read += [path for name in scripts for path in re.findall(r"['\"](/var/run/zbi-gateway/[^'\"]+)['\"]", data[name])]
    # The user table: the engine reads its files by name from one directory.
    table_dir = re.search(r"""(?:const|local) TABLE_DIR = ['"]([^'"]+)['"]""", "".join(data[name] for name in scripts))
    assert table_dir
    read += [f"{table_dir.group(1)}{name}" for name in data if is_user_file(name)]
    # What the pod mounts from Secrets, each found where nginx or a script names it.
    assert {path for path in read if path.startswith("/var/run/")} == {
        POD_PATHS.tls_certificate,
        POD_PATHS.tls_key,
        f"{POD_TLS_DIR}/ca.crt",
        POD_PATHS.upstream_auth_include,
        POD_PATHS.upstream_auth_file,
    }
    for path in read:
        kind, key = source(path, nginx_container)
        if kind == "ConfigMap:gateway-config":
            assert key in data, path
        else:
            assert key in secrets[kind.removeprefix("Secret:")]["stringData"], path
    assert {p.split("/")[3] for p in read if p.startswith("/var/run")} == {
        POD_UPSTREAM_DIR.split("/")[3],
        POD_TLS_DIR.split("/")[3],
    }
    progs = next(a.split("=", 1)[1] for a in metrics["args"] if a.startswith("--progs="))
    assert source(f"{progs}/{gateway_metrics.PROGRAM_FILE}", metrics) == (
        "ConfigMap:gateway-config",
        gateway_metrics.PROGRAM_FILE,
    )
    # nginx sends its log where mtail listens, and mtail serves metrics on the port the pod declares.
    syslog = re.search(r"syslog:server=([\d.]+:\d+)", conf)
    assert syslog and f"--logs=udp://{syslog.group(1)}" in metrics["args"]
    assert metrics["ports"] == [{"name": "metrics", "containerPort": gateway_metrics.METRICS_PORT}]
    listen = re.search(r"listen 0\.0\.0\.0:(\d+) ssl", conf)
    assert listen and nginx_container["ports"] == [{"name": "https", "containerPort": int(listen.group(1))}]


def test_the_node_credentials_reach_the_gateway_as_a_secret_only(dev: Plan) -> None:
    secret = one(dev, "Secret", "gateway-upstream", NS)
    assert set(secret["stringData"]) == {"upstream-auth", "upstream-auth.conf"}
    # Masked in the plan: the value is a Pulumi secret.
    assert secret["stringData"]["upstream-auth"] != "" and "zbi:" not in secret["stringData"]["upstream-auth"]
    env = [e for c in containers(dev).values() for e in c.get("env", [])]
    assert env == []


def test_replicas_spread_drain_and_scale(dev: Plan) -> None:
    deployment = one(dev, "Deployment", "gateway", NS)
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = pod_spec(deployment)
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert pod["priorityClassName"] == "zbi-gateway"
    nginx_container = containers(dev)["gateway"]
    assert nginx_container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    # The load balancer stops sending before nginx drains, and the grace period covers both.
    sleep = int(nginx_container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > sleep
    # nginx by the image's own path, not the image's entrypoint scripts.
    assert nginx_container["command"][:1] == [GATEWAY_ENGINE_IMAGES[DEFAULT_GATEWAY_ENGINE].binary]
    for container in containers(dev).values():
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["limits"] and container["resources"]["requests"]
    hpa = one(dev, "HorizontalPodAutoscaler", "gateway", NS)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert one(dev, "PodDisruptionBudget", "gateway-pdb", NS)["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("engine_choice", ENGINES)
def test_a_new_user_rolls_nothing_and_a_new_limit_rolls_the_gateway(engine_choice: Engine) -> None:
    base = {
        "jsonRpc": {"methods": ["getblockcount"]},
        "grpc": {"methods": ["GetLatestBlock"]},
        "users": [{"name": "a", "keySha256": key_hash(new_key())}],
    }
    upstreams = GatewayUpstreams(rpc="node:8232")

    def hash_of(document: dict[str, Any]) -> str:
        files = pod_files(
            parse_access(document, "t"),
            upstreams,
            max_body_bytes=4096,
            metrics_syslog="127.0.0.1:1",
            engine=engine_choice,
        )
        return config_hash(files)

    more_users = {**base, "users": [*base["users"], {"name": "b", "keySha256": key_hash(new_key())}]}
    # A new key is read by nginx from its own file on the next request: no rollout.
    assert hash_of(more_users) == hash_of(base)
    faster = {**base, "users": [{**base["users"][0], "rateLimit": {"requestsPerSecond": 99}}]}
    # A new rate-limit bucket is nginx.conf: the pods roll, one at a time.
    assert hash_of(faster) != hash_of(base)


def test_the_plans_hash_annotation_is_the_config_maps(dev: Plan) -> None:
    data = one(dev, "ConfigMap", "gateway-config", NS)["data"]
    annotations = one(dev, "Deployment", "gateway", NS)["spec"]["template"]["metadata"]["annotations"]
    assert annotations[CONFIG_HASH_ANNOTATION] == config_hash(data)


@pytest.mark.parametrize("engine_choice", ENGINES)
def test_the_pod_configuration_passes_nginx_and_mtail(
    engine_choice: Engine, dev_per_engine: dict[Engine, Plan], tmp_path: Path
) -> None:
    """`nginx -t` loads the engine's module (njs: and the JS file; lua-nginx-module runs no init_by_lua under -t,
    the live tests load the Lua modules) and checks every directive; mtail compiles the program."""
    data = one(dev_per_engine[engine_choice], "ConfigMap", "gateway-config", NS)["data"]
    checked = checked_by_nginx(data, engine_choice, tmp_path)
    assert checked.returncode == 0, checked.stderr
    compiled = subprocess.run(
        [mtail(), "--compile_only", f"--progs={tmp_path}", "--logtostderr"], capture_output=True, text=True, timeout=30
    )
    assert compiled.returncode == 0 and "compile errors" not in compiled.stderr, compiled.stderr


def test_instances_without_an_access_file_keep_their_own_front_door(plan_stack: PlanStack) -> None:
    plan = plan_stack(
        "dev", merge={"zbi:instances": {"other": {"network": "mainnet", "endpoints": {"publicGrpc": True}}}}
    )
    assert not objects(plan, "Deployment", "zbi-other")
    assert one(plan, "Service", "lightwalletd-grpc", "zbi-other")["spec"]["type"] == "LoadBalancer"


def test_a_bad_access_file_is_refused_with_its_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "access").mkdir()
    (tmp_path / "access" / "good.yaml").write_text("jsonRpc: {methods: [getblockcount]}\n")
    (tmp_path / "access" / "bad.yaml").write_text("jsonRpc: {methods: [getblockcont]}\n")
    assert set(instance_access_files(tmp_path, ["good", "absent"])) == {"good"}
    with pytest.raises(ConfigError) as raised:
        instance_access_files(tmp_path, ["good", "bad"])
    message = str(raised.value)
    assert "bad.yaml" in message and "jsonRpc.methods" in message and "getblockcount" in message


def test_the_gateway_starts_after_the_services_nginx_resolves(dev: Plan) -> None:
    """nginx resolves its upstream names once, at start: the Deployment waits for both Services to exist."""
    deployment = dev.named("testnet-gateway")
    services = {r.urn: r.inputs["metadata"]["name"] for r in dev.of_type("kubernetes:core/v1:Service")}
    assert {"zebrad-rpc", "lightwalletd-grpc"} <= {services[u] for u in deployment.depends_on if u in services}


def test_the_splice_cap_in_the_plan_is_the_gateway_containers_memory_limit(dev: Plan) -> None:
    """The ConfigMap's nginx.conf admits as many spliced batches at once as the nginx container's own memory limit
    (in the same plan) allows: the limit is the one source of truth."""
    conf = one(dev, "ConfigMap", "gateway-config", NS)["data"]["nginx.conf"]
    limit = memory_mib(containers(dev)["gateway"]["resources"]["limits"]["memory"])
    assert re.findall(r"limit_conn zbi_spliced (\d+);", conf) == [str(spliced_batches_cap(limit))]


def test_every_socket_the_pods_nginx_listens_on_is_its_own(dev: Plan) -> None:
    """nginx binds each `listen` at start: two servers on one port fail the pod (nginx -t does not bind, so the
    pod-config test cannot see it), and the container port must be the public server's."""
    conf = one(dev, "ConfigMap", "gateway-config", NS)["data"]["nginx.conf"]
    listens = re.findall(r"^\s*listen ([^\s;]+)", conf, flags=re.MULTILINE)
    ports = [address.rsplit(":", 1)[1] for address in listens if not address.startswith("unix:")]
    assert len(ports) >= 2 and len(set(ports)) == len(ports), listens
    (deployment,) = [d for d in objects(dev, "Deployment", NS) if d["metadata"]["name"] == "gateway"]
    (nginx,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "gateway"]
    assert [str(p["containerPort"]) for p in nginx["ports"]] == [ports[0]]


def test_gateway_js_imports_the_cache_module_only_where_the_instance_caches() -> None:
    """njs runs an imported module's top level again for every request, so gateway.js imports gateway_cache.js only
    when the instance has a history cache; without, `history` is null and every call goes to the node."""
    from zbi_infra.render.gateway_cache import GatewayCache

    file = parse_access({"users": []}, "a.yaml")
    upstreams = GatewayUpstreams(rpc="node:8232")
    without = pod_files(file, upstreams, max_body_bytes=65536, metrics_syslog="127.0.0.1:1")["gateway.js"]
    cached = pod_files(
        file, upstreams, max_body_bytes=65536, metrics_syslog="127.0.0.1:1", history_cache=GatewayCache(1, 1, 1)
    )["gateway.js"]
    assert "import history from 'gateway_cache.js';" in cached and "const history = null;" not in cached
    assert "import history" not in without and "const history = null;" in without
