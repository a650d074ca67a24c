"""The pods zBI renders agree with the images they run, file by file of the upstream evidence
(tests/fixtures/upstream, SOURCES.json): command and subcommand, config keys, user, writable paths, versions."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest

from tests.conftest import UPSTREAM, PlanStack
from tests.k8s_objects import all_containers, one, pod_spec
from zbi_infra.config.instance import Network
from zbi_infra.config.node_options import zebrad_config_keys
from zbi_infra.kube import image_ref
from zbi_infra.plan.engine import Plan
from zbi_infra.releases import (
    GATEWAY,
    LIGHTWALLETD,
    MTAIL,
    OPENRESTY,
    SOCAT,
    ZAINO,
    ZCASHD,
    ZCASHD_AWARENESS_OPTION,
    ZEBRAD,
    ZEBRAD_RELEASES,
)
from zbi_infra.render import lightwallet

SOURCES = json.loads((UPSTREAM / "SOURCES.json").read_text())
VARIANTS = {
    "main": {"network": "mainnet", "node": {"inboundP2p": True}, "endpoints": {"publicGrpc": True}},
    "zaino": {"network": "testnet", "lightwallet": {"kind": "zaino"}},
    "legacy": {"network": "regtest", "node": {"kind": "zcashd"}},
    "regnet": {"network": "regtest", "node": {"replicas": 3}, "lightwallet": {"kind": "none"}},
}


@pytest.fixture(scope="module")
def plan(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev", merge={"zbi:instances": VARIANTS})


def text(path: str) -> str:
    return (UPSTREAM / path).read_text()


def dockerfile_arg(dockerfile: str, name: str) -> str:
    match = re.search(rf"^ARG {name}=\"?([^\"\s]+)\"?", dockerfile, flags=re.MULTILINE)
    assert match, f"ARG {name} not in the Dockerfile"
    return match.group(1)


def container(plan: Plan, namespace: str, workload: str, name: str | None = None) -> dict[str, Any]:
    containers = pod_spec(one(plan, "StatefulSet", workload, namespace))["containers"]
    return next(c for c in containers if c["name"] == (name or workload))


def pod_uid(plan: Plan, namespace: str, workload: str) -> int:
    return pod_spec(one(plan, "StatefulSet", workload, namespace))["securityContext"]["runAsUser"]


def writable_mounts(plan: Plan, namespace: str, workload: str, name: str) -> set[str]:
    return {m["mountPath"] for m in container(plan, namespace, workload, name)["volumeMounts"] if not m.get("readOnly")}


def test_every_fixture_names_its_source() -> None:
    files = {str(p.relative_to(UPSTREAM)) for p in UPSTREAM.rglob("*") if p.is_file() and p.name != "SOURCES.json"}
    assert files == set(SOURCES)
    for source in SOURCES.values():
        assert {"repository", "tag", "commit", "path", "licence", "how"} <= set(source)
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])


def test_the_release_table_matches_the_upstream_tags() -> None:
    assert SOURCES["zebra/Dockerfile"]["tag"] == f"v{ZEBRAD.tag}"
    assert SOURCES["lightwalletd/Dockerfile"]["tag"] == LIGHTWALLETD.tag
    assert SOURCES["zcash/Dockerfile"]["tag"] == ZCASHD.tag
    assert SOURCES["zaino/image-facts.json"]["tag"] == ZAINO.tag
    eos = json.loads(text("zebra/end-of-support.json"))
    release = ZEBRAD_RELEASES[eos["release"]]
    assert release.estimated_release_height == eos["estimated_release_height"]
    assert release.eos_after_days == eos["eos_panic_after_days"]
    assert release.end_of_support_height == eos["estimated_release_height"] + 105 * eos["blocks_per_day"]
    deprecation = json.loads(text("zcash/deprecation.json"))
    assert deprecation["awareness_option"] == ZCASHD_AWARENESS_OPTION
    assert ZCASHD.tag == f"v{deprecation['release']}"


# ---- zebrad ------------------------------------------------------------------------------------------------------


def test_zebrad_runs_its_binary_as_the_images_user(plan: Plan) -> None:
    dockerfile = text("zebra/Dockerfile")
    assert "COPY --link --from=release /usr/local/bin/zebrad /usr/local/bin/" in dockerfile
    # The runtime image starts as root and its entrypoint drops privileges with setpriv: zBI runs zebrad directly.
    assert 'ENTRYPOINT [ "entrypoint.sh" ]' in dockerfile and "setpriv" in text("zebra/entrypoint.sh")
    assert ZEBRAD.uid == int(dockerfile_arg(dockerfile, "UID"))
    main = container(plan, "zbi-zaino", "zebrad")
    assert main["command"] == ["zebrad", "-c", "/etc/zebra/zebrad.toml", "start"]
    assert "zebrad -c myconfig.toml start" in text("zebra/zebrad-default-config.toml")
    assert pod_uid(plan, "zbi-zaino", "zebrad") == ZEBRAD.uid
    assert main["image"] == image_ref(ZEBRAD.repository, ZEBRAD.tag, None)  # with the digest table's pin


def test_zebrad_gets_no_environment_override_of_its_config(plan: Plan) -> None:
    # The entrypoint's defaults (ZEBRA_STATE__CACHE_DIR=$HOME/.cache/zebra) would override zebrad.toml: it never runs.
    for namespace in ("zbi-zaino", "zbi-main", "zbi-regnet"):
        env = {e["name"] for e in container(plan, namespace, "zebrad").get("env", [])}
        assert not {name for name in env if name.startswith("ZEBRA_")}, env
    assert "ZEBRA_STATE__CACHE_DIR" in text("zebra/entrypoint.sh")


def test_every_rendered_zebrad_key_exists_in_the_pinned_release(plan: Plan) -> None:
    schema = json.loads(text("zebra/zebrad-config-keys.json"))
    assert {section: frozenset(keys) for section, keys in schema.items()} == zebrad_config_keys()
    for namespace in ("zbi-zaino", "zbi-main", "zbi-regnet"):
        config = tomllib.loads(one(plan, "ConfigMap", "zebrad-config", namespace)["data"]["zebrad.toml"])
        for section, keys in config.items():
            assert set(keys) <= set(schema[section]), (section, set(keys) - set(schema[section]))


def test_zebrad_writes_only_to_its_volumes(plan: Plan) -> None:
    config = tomllib.loads(one(plan, "ConfigMap", "zebrad-config", "zbi-zaino")["data"]["zebrad.toml"])
    writable = writable_mounts(plan, "zbi-zaino", "zebrad", "zebrad")
    assert writable == {"/var/lib/zebra", "/tmp"}
    for path in (config["state"]["cache_dir"], config["network"]["cache_dir"]):
        assert any(path.startswith(mount) for mount in writable), path
    assert config["rpc"]["enable_cookie_auth"] is False  # no cookie file to write
    assert "log_file" not in config.get("tracing", {})
    home = {e["name"]: e.get("value") for e in container(plan, "zbi-zaino", "zebrad")["env"]}["HOME"]
    assert home in writable


def test_the_released_image_serves_prometheus_metrics() -> None:
    features = json.loads(text("zebra/release-features.json"))
    assert features["dockerfile_features"] == "default-release-binaries"
    assert "prometheus" in features["default-release-binaries"]
    assert "endpoint_addr" in json.loads(text("zebra/zebrad-config-keys.json"))["metrics"]


def test_inbound_p2p_advertises_the_load_balancers_address(plan: Plan) -> None:
    main = container(plan, "zbi-main", "zebrad")
    assert main["command"][:2] == ["/bin/sh", "-c"]
    script = main["command"][2]
    assert 'export ZEBRA_NETWORK__EXTERNAL_ADDR="$address:8233"' in script
    assert script.endswith("exec zebrad -c /etc/zebra/zebrad.toml start")
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["ZBI_P2P_EXTERNAL_HOST"].endswith(".elb.us-east-1.amazonaws.com")
    assert "external_addr" in json.loads(text("zebra/zebrad-config-keys.json"))["network"]
    assert "debian:trixie-slim" in text("zebra/Dockerfile")  # getent (libc-bin) and /bin/sh are in the base


def test_regtest_peering_rests_on_zebras_localhost_rule(plan: Plan) -> None:
    rule = json.loads(text("zebra/regtest-initial-peers.json"))
    assert rule["regtest_keeps_only_localhost_peers"] is True
    config = tomllib.loads(one(plan, "ConfigMap", "zebrad-config", "zbi-regnet")["data"]["zebrad.toml"])
    peers = config["network"]["initial_testnet_peers"]
    assert peers and all(peer.rsplit(":", 1)[0] in rule["localhost_addresses"] for peer in peers)
    containers = pod_spec(one(plan, "StatefulSet", "zebrad", "zbi-regnet"))["containers"]
    forwarders = [c for c in containers if c["name"].startswith("peer-")]
    listening = {c["args"][0].split(",")[0].removeprefix("TCP-LISTEN:") for c in forwarders}
    assert listening == {peer.rsplit(":", 1)[1] for peer in peers}
    for forwarder in forwarders:
        assert forwarder["image"] == image_ref(SOCAT.repository, SOCAT.tag, None)
        assert forwarder["command"] == [SOCAT.binary]
        assert forwarder["securityContext"]["runAsUser"] == SOCAT.uid


# ---- lightwalletd ------------------------------------------------------------------------------------------------


def test_lightwalletd_runs_its_entrypoint_as_its_user_with_known_flags(plan: Plan) -> None:
    dockerfile = text("lightwalletd/Dockerfile")
    assert 'ENTRYPOINT ["lightwalletd"]' in dockerfile
    assert LIGHTWALLETD.uid == int(dockerfile_arg(dockerfile, "LWD_UID"))
    assert pod_uid(plan, "zbi-main", "lightwalletd") == LIGHTWALLETD.uid
    flags = json.loads(text("lightwalletd/flags.json"))
    main = container(plan, "zbi-main", "lightwalletd")
    assert main["command"][0] == "lightwalletd"
    used = {arg.removeprefix("--").split("=", 1)[0] for arg in main["command"][1:]}
    assert used <= set(flags["flags"]), used - set(flags["flags"])
    # Credentials arrive as environment variables bound to flags (viper AutomaticEnv, "-" -> "_", no prefix).
    assert flags["env_binding"] == {"automatic_env": True, "prefix": None, "replacer": True}
    env = {e["name"] for e in main["env"]}
    assert {name.lower().replace("_", "-") for name in env} <= set(flags["flags"])
    assert main["image"] == image_ref(LIGHTWALLETD.repository, LIGHTWALLETD.tag, None)


def test_lightwalletd_writes_only_to_its_volumes(plan: Plan) -> None:
    main = container(plan, "zbi-main", "lightwalletd")
    data_dir = next(a for a in main["command"] if a.startswith("--data-dir=")).split("=", 1)[1]
    assert data_dir in writable_mounts(plan, "zbi-main", "lightwalletd", "lightwalletd")
    assert "--log-file=/dev/stdout" in main["command"]  # not ./server.log in the read-only working directory


def test_light_wallet_servers_wait_for_a_ready_node_before_starting(plan: Plan) -> None:
    for namespace, workload in (("zbi-main", "lightwalletd"), ("zbi-zaino", "zaino")):
        (wait,) = pod_spec(one(plan, "StatefulSet", workload, namespace))["initContainers"]
        assert wait["command"][:2] == ["bash", "-c"]
        port = "8232" if namespace == "zbi-main" else "18232"
        assert f"/dev/tcp/zebrad-rpc.{namespace}.svc.cluster.local/{port}" in wait["command"][2]
        assert wait["image"] == container(plan, namespace, workload)["image"]
    # bash: lightwalletd's image is golang's (Debian), Zaino's entrypoint is a bash script on Debian.
    assert text("lightwalletd/Dockerfile").startswith("FROM golang:")
    assert json.loads(text("zaino/image-facts.json"))["entrypoint_only_creates_directories_then_execs_zainod"]


# ---- zcashd (regtest only) ---------------------------------------------------------------------------------------


def test_zcashd_runs_its_binary_not_its_entrypoint(plan: Plan) -> None:
    dockerfile = text("zcash/Dockerfile")
    assert ZCASHD.uid == int(dockerfile_arg(dockerfile, "ZCASHD_UID"))
    assert pod_uid(plan, "zbi-legacy", "zcashd") == ZCASHD.uid
    # The entrypoint touches a file under the root filesystem, which is read-only here.
    assert "touch .zcash/zcash.conf" in text("zcash/entrypoint.sh")
    main = container(plan, "zbi-legacy", "zcashd")
    assert main["command"][0] == "zcashd" and "-printtoconsole" in main["command"]
    # zcash-fetch-params only prints that it is no longer needed: no init container runs it.
    assert "no longer needed" in text("zcash/fetch-params.sh") and "exit 0" in text("zcash/fetch-params.sh")
    assert "initContainers" not in pod_spec(one(plan, "StatefulSet", "zcashd", "zbi-legacy"))
    conf = one(plan, "ConfigMap", "zcashd-config", "zbi-legacy")["data"]["zcash.conf"]
    assert f"{ZCASHD_AWARENESS_OPTION}=1" in conf.splitlines()


# ---- Zaino -------------------------------------------------------------------------------------------------------


def test_zaino_runs_start_with_a_config_of_known_keys(plan: Plan) -> None:
    facts = json.loads(text("zaino/image-facts.json"))
    schema = json.loads(text("zaino/zainod-config-keys.json"))
    assert pod_uid(plan, "zbi-zaino", "zaino") == facts["uid"] == ZAINO.uid
    main = container(plan, "zbi-zaino", "zaino")
    assert main["command"] == ["zainod", *facts["subcommand"][:2], lightwallet.ZAINO_CONFIG_PATH]
    config = lightwallet.zaino_config(
        Network.TESTNET,
        validator_address="zebrad-rpc.zbi-zaino.svc.cluster.local:18232",
        rpc_user="zbi",
        rpc_password="p",
        tls=True,
    )
    assert set(config) <= set(schema["top_level"])
    assert set(config["grpc_settings"]) <= set(schema["grpc_settings"])
    assert set(config["grpc_settings"]["tls"]) <= set(schema["grpc_settings.tls"])
    assert set(config["validator_settings"]) <= set(schema["validator_settings"])
    assert set(config["storage"]["database"]) <= set(schema["storage.database"])
    assert config["network"] in schema["network_values"] and config["backend"] in schema["backend_values"]
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["HOME"] == "/tmp" and not [n for n in env if n.startswith(facts["env_prefix"])]
    assert config["storage"]["database"]["path"] in writable_mounts(plan, "zbi-zaino", "zaino", "zaino")


def test_every_default_image_is_pinned_and_from_the_release_table(plan: Plan) -> None:
    # GATEWAY: the RPC guard beside zebrad, and the gateway on njs; OPENRESTY: the gateway on Lua, the default.
    images = (ZEBRAD, ZCASHD, LIGHTWALLETD, ZAINO, SOCAT, GATEWAY, OPENRESTY, MTAIL)
    expected = {image_ref(image.repository, image.tag, None) for image in images}
    expected |= {image_ref(ZAINO.repository, "0.8.0-no-tls", None)}
    used = {
        c["image"]
        for workload in (r for r in plan.kubernetes_objects() if r.type.endswith(("StatefulSet", "Deployment")))
        for c in all_containers({"spec": workload.inputs["spec"]})
    }
    assert used <= expected, used - expected
    assert all(":" in image and not image.endswith(":latest") for image in used)


def test_the_gateway_image_is_nginx_with_njs_as_its_unprivileged_user(plan_stack: PlanStack) -> None:
    dockerfile = text("nginx-unprivileged/Dockerfile")
    version = re.search(r"^ENV NGINX_VERSION=(\S+)", dockerfile, flags=re.MULTILINE)
    njs = re.search(r"^ENV NJS_VERSION=(\d+)\.(\d+)\.(\d+)", dockerfile, flags=re.MULTILINE)
    assert version and version.group(1) == GATEWAY.tag
    # gateway.js needs njs 0.7 or later (js_var, r.requestText, async subrequests); the live tests run 0.7.9.
    assert njs and (int(njs.group(1)), int(njs.group(2))) >= (0, 7)
    assert "nginx-module-njs=" in dockerfile
    assert int(dockerfile_arg(dockerfile, "UID")) == GATEWAY.uid
    # SIGQUIT is nginx's graceful stop: the kubelet sends the image's stop signal, so a draining pod finishes.
    assert re.search(r"^STOPSIGNAL SIGQUIT$", dockerfile, flags=re.MULTILINE)
    dev = plan_stack("dev", merge={"zbi:instances": {"testnet": {"gateway": {"engine": "njs"}}}})
    pod = pod_spec(one(dev, "Deployment", "gateway", "zbi-testnet"))
    assert pod["securityContext"]["runAsUser"] == GATEWAY.uid
    nginx_container = next(c for c in pod["containers"] if c["name"] == "gateway")
    # Unprivileged: a port above 1024 (the image's own is 8080; zBI's TLS listener is 8443).
    assert nginx_container["ports"][0]["containerPort"] > 1024


def test_the_lua_engines_image_is_openrestys_package_of_the_pinned_release() -> None:
    """docker-openresty's bookworm Dockerfile at the pinned tag installs OpenResty's Debian package of the release the
    tag names, links the log files to the container's stdio, names no user and stops gracefully."""
    dockerfile = text("openresty/Dockerfile")
    release, image_release, flavor = re.fullmatch(r"(\d+\.\d+\.\d+\.\d+)-(\d+)-(\w+)", OPENRESTY.tag).groups()  # type: ignore[union-attr]
    assert SOURCES["openresty/Dockerfile"]["tag"] == f"{release}-{image_release}"
    assert flavor == "bookworm" and 'ARG RESTY_IMAGE_TAG="bookworm-slim"' in dockerfile
    assert f'ARG RESTY_DEB_VERSION="={release}-1~bookworm1"' in dockerfile
    # No USER: the image would run as root, so zBI names the uid (nobody, 65534, from Debian's base-passwd).
    assert not re.search(r"^USER ", dockerfile, flags=re.MULTILINE) and OPENRESTY.uid == 65534
    assert re.search(r"^STOPSIGNAL SIGQUIT$", dockerfile, flags=re.MULTILINE)
    # The package's nginx, which zBI runs by its path rather than the image's CMD.
    assert 'CMD ["/usr/bin/openresty", "-g", "daemon off;"]' in dockerfile
    assert OPENRESTY.binary == "/usr/local/openresty/nginx/sbin/nginx"


def test_the_metrics_sidecar_is_mtails_release_image() -> None:
    dockerfile = text("mtail/Dockerfile.goreleaser")
    goreleaser = text("mtail/goreleaser.yml")
    assert "FROM scratch" in dockerfile and 'ENTRYPOINT ["/mtail"]' in dockerfile
    assert "name_template: ghcr.io/google/{{ .ProjectName }}:{{ .Version }}" in goreleaser
    assert MTAIL.repository == "ghcr.io/google/mtail" and MTAIL.binary == "/mtail"
    assert SOURCES["mtail/goreleaser.yml"]["tag"] == f"v{MTAIL.tag}"
