"""The gateway's live harness, shared by its tests and its benchmarks: the rendered gateway in Debian's nginx with
TLS, its user table as files, and its callers' keys. The servers around it have their own modules (a JSON-RPC node,
tests/json_rpc_node.py; a CompactTxStreamer server, tests/light_wallet_server.py; mtail and the blackbox exporter,
tests/monitoring_exporters.py), whose names are importable from here too. Everything binds 127.0.0.1 and stops when
its block ends."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

# A name imported `as` itself is re-exported: tests and benchmarks import it from here.
from tests.debian import debian_tool
from tests.json_rpc_node import NODE_CREDENTIALS, Node
from tests.json_rpc_node import TIP as TIP
from tests.json_rpc_node import node_answer as node_answer
from tests.json_rpc_node import start_node as start_node
from tests.light_wallet_server import LightWallet
from tests.light_wallet_server import real_compact_block as real_compact_block
from tests.light_wallet_server import serving_light_wallet as serving_light_wallet
from tests.light_wallet_server import types_namespace as types_namespace
from tests.loopback_server import free_port as free_port
from tests.monitoring_exporters import Blackbox as Blackbox
from tests.monitoring_exporters import Metrics as Metrics
from tests.monitoring_exporters import mtail as mtail
from tests.monitoring_exporters import running_blackbox as running_blackbox
from tests.monitoring_exporters import running_mtail as running_mtail
from tests.monitoring_exporters import serving as serving
from tests.nginx_builds import for_this_nginx
from zbi_infra.access_keys import key_hash, new_key
from zbi_infra.config.access import AccessFile, parse_access
from zbi_infra.render import gateway_cache
from zbi_infra.render.gateway import (
    ANONYMOUS_FILE,
    JSON_TEXT_MODULE,
    KEY_FILE_PREFIX,
    SPLICE_JS_MODULE,
    GatewayPaths,
    gateway_js,
    gateway_splice_js,
    is_user_file,
    json_text_js,
    upstream_auth_directive,
    user_files,
    users_table,
)
from zbi_infra.render.gateway_cache import GatewayCache
from zbi_infra.render.gateway_engines import Engine, lua_modules
from zbi_infra.render.gateway_nginx import POD_JS_MODULE, nginx_conf

KEYS = {name: new_key() for name in ("exchange", "analytics", "expired", "slow", "bench", "batcher", "metered")}
# An nginx and its njs module to run the njs engine's tests on in place of Debian's (the pod's image carries nginx.org's
# builds): both named, or neither.
NJS_NGINX = os.environ.get("ZBI_TEST_NJS_NGINX", "")
JS_MODULE = Path(os.environ.get("ZBI_TEST_NJS_MODULE") or POD_JS_MODULE)


def access(keys: dict[str, str] = KEYS) -> AccessFile:
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    return parse_access(
        {
            "jsonRpc": {"methods": ["getblockcount", "getblock", "getblockchaininfo", "getinfo"]},
            "grpc": {"methods": ["GetLightdInfo", "GetLatestBlock", "GetBlockRange"]},
            "anonymous": {
                "jsonRpc": ["getinfo"],
                "grpc": ["GetLightdInfo"],
                "rateLimit": {"requestsPerSecond": 5, "burst": 20},
            },
            "users": [
                {"name": "exchange", "keySha256": key_hash(keys["exchange"]), "rateLimit": {"requestsPerSecond": 500}},
                {
                    "name": "analytics",
                    "keySha256": key_hash(keys["analytics"]),
                    "jsonRpc": ["getblockcount"],
                    "grpc": ["GetLatestBlock"],
                },
                {"name": "expired", "keySha256": key_hash(keys["expired"]), "expires": yesterday},
                {
                    "name": "bench",
                    "keySha256": key_hash(keys["bench"]),
                    "rateLimit": {"requestsPerSecond": 100_000, "burst": 100_000},
                },
                {
                    "name": "batcher",
                    "keySha256": key_hash(keys["batcher"]),
                    "rateLimit": {"requestsPerSecond": 1, "burst": 5},
                },
                {
                    "name": "slow",
                    "keySha256": key_hash(keys["slow"]),
                    "rateLimit": {"requestsPerSecond": 1, "burst": 1},
                },
            ],
        },
        "access/test.yaml",
    )


# The Lua engine's modules in Debian (OpenResty, the pod's image, has them built in) and the JSON module it requires.
LUA_MODULES = (Path("/usr/lib/nginx/modules/ndk_http_module.so"), Path("/usr/lib/nginx/modules/ngx_http_lua_module.so"))
CJSON = Path("/usr/lib/x86_64-linux-gnu/lua/5.1/cjson.so")


# An OpenResty nginx to run the Lua engine's tests on in place of Debian's nginx and modules (OpenResty has the
# modules and lua-cjson built in): the pod's image was not pulled here, but its build can be run (README, verified).
OPENRESTY = os.environ.get("ZBI_TEST_OPENRESTY", "")


def lua_module_paths() -> tuple[str, ...]:
    """What an nginx.conf for the Lua engine loads in the tests: Debian's dynamic modules, none in OpenResty."""
    return () if OPENRESTY else tuple(str(path) for path in LUA_MODULES)


def nginx(engine: Engine = "njs") -> str:
    if engine == "lua" and OPENRESTY:
        if not os.access(OPENRESTY, os.X_OK):
            pytest.fail(f"ZBI_TEST_OPENRESTY={OPENRESTY} is not an executable nginx. Fix: unset it or name OpenResty's")
        return OPENRESTY
    if engine == "njs" and (NJS_NGINX or Path(POD_JS_MODULE) != JS_MODULE):
        if not (os.access(NJS_NGINX, os.X_OK) and JS_MODULE.is_file()):
            pytest.fail(
                "ZBI_TEST_NJS_NGINX and ZBI_TEST_NJS_MODULE name an nginx and its njs module together. Fix: both"
            )
        return NJS_NGINX
    if engine == "lua":
        # luajit2 with them: its interpreter (tests/test_json_text_lua.py) shares the module's libluajit2, where
        # Debian's luajit would replace that library, and apt would remove the module (CI failed so).
        packages = ["nginx-light", "libnginx-mod-http-lua", "lua-cjson", "luajit2"]
        return debian_tool("nginx", packages, needs=(*LUA_MODULES, CJSON))
    return debian_tool("nginx", ["nginx-light", "libnginx-mod-http-js"], needs=(JS_MODULE,))


@dataclass
class Gateway:
    url: str
    context: ssl.SSLContext
    config_dir: Path
    log: Path
    node: Node | None
    port: int = 0
    certificate: Path | None = None

    def call(self, body: Any, user: str | None = "exchange", key: str | None = None, raw: bytes | None = None):
        data = raw if raw is not None else json.dumps(body).encode()
        request = urllib.request.Request(self.url, data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        if user is not None:
            secret = key if key is not None else KEYS[user]
            request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.context) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


def tls_files(directory: Path) -> tuple[Path, Path]:
    certificate, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
         "-subj", "/CN=gateway.zbi.test", "-addext", "subjectAltName=DNS:gateway.zbi.test,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return certificate, key


@contextmanager
def running_gateway(
    directory: Path,
    rpc_upstream: str,
    node: Node | None,
    grpc_upstream: str | None = None,
    metrics_syslog: str | None = None,
    probe_key: str | None = None,
    max_body_bytes: int = 16 * 1024,
    zcashd_upstream: str | None = None,
    zcashd_wallet: bool = False,
    history_cache: bool = False,
    cache_max_answer_bytes: int = gateway_cache.MAX_CACHED_ANSWER_BYTES,
    access_file: AccessFile | None = None,
    cache_fills_at_once: int = 4,
    cache_tip_max_age_seconds: int = gateway_cache.TIP_MAX_AGE_SECONDS,
    engine: Engine = "njs",
) -> Iterator[Gateway]:
    """The rendered gateway in nginx, with TLS, until the block ends (its access log copied to `metrics_syslog`);
    with `zcashd_upstream`, a zcashd sidecar's JSON-RPC at /zcashd; `access_file` instead of the harness's own."""
    file = access_file or access()
    binary = nginx(engine)
    directory.mkdir(parents=True, exist_ok=True)
    certificate, key = tls_files(directory)
    paths = GatewayPaths(
        config_dir=str(directory),
        upstream_auth_file=str(directory / "upstream-auth"),
        tls_certificate=str(certificate),
        tls_key=str(key),
    )
    (directory / "upstream-auth").write_text(NODE_CREDENTIALS + "\n")
    Path(paths.upstream_auth_include).write_text(upstream_auth_directive(NODE_CREDENTIALS))
    probe_hash = key_hash(probe_key) if probe_key else None
    write_user_table(directory, users_table(file, probe_key_sha256=probe_hash))
    relay_port = free_port()
    (directory / "gateway.js").write_text(gateway_js(paths, zcashd_wallet=zcashd_wallet, history_cache=history_cache))
    (directory / SPLICE_JS_MODULE).write_text(gateway_splice_js(relay_port=relay_port))
    cache = (
        GatewayCache(
            1,
            1,
            1,
            str(directory / "cache"),
            free_port(),
            cache_max_answer_bytes,
            cache_fills_at_once,
            cache_tip_max_age_seconds,
        )
        if history_cache
        else None
    )
    (directory / gateway_cache.JS_MODULE).write_text(
        gateway_cache.cache_js(cache, paths.upstream_auth_file, relay_port)
    )
    (directory / JSON_TEXT_MODULE).write_text(json_text_js())
    if engine == "lua":
        modules = lua_modules(paths, zcashd_wallet=zcashd_wallet, relay_port=relay_port, history_cache=cache)
        for name, text in modules.items():
            (directory / name).write_text(text)
    port = free_port()
    config = nginx_conf(
        file,
        paths,
        listen=f"127.0.0.1:{port}",
        rpc_upstream=rpc_upstream,
        grpc_upstream=grpc_upstream,
        max_body_bytes=max_body_bytes,
        js_module_path=str(JS_MODULE),
        temp_dir=str(directory),
        metrics_syslog=metrics_syslog,
        relay_port=relay_port,
        zcashd_upstream=zcashd_upstream,
        history_cache=cache,
        engine=engine,
        lua_module_paths=lua_module_paths(),
        # Workers would otherwise drop to `nobody`, who cannot read a root-owned temporary directory.
        user="root" if os.geteuid() == 0 else None,
    )
    (directory / "nginx.conf").write_text(for_this_nginx(config, binary))
    context = ssl.create_default_context(cafile=str(certificate))
    with running_nginx(binary, directory, port) as log:
        yield Gateway(f"https://127.0.0.1:{port}/", context, directory, log, node, port, certificate)


@contextmanager
def gateway_before_a_node(directory: Path, **options: Any) -> Iterator[Gateway]:
    """The rendered gateway (running_gateway, with its own `options`) in front of a node of its own (start_node),
    both stopped when the block ends; the node is the gateway's `node`."""
    node = start_node()
    try:
        with running_gateway(directory, f"127.0.0.1:{node.server.server_port}", node, **options) as gateway:
            yield gateway
    finally:
        node.server.shutdown()


def nginx_cpu_seconds(master: int) -> float:
    """CPU time of an nginx, master and workers, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry.name) == master or int(stat[1]) == master:
                total += int(stat[11]) + int(stat[12])
    return total / ticks


def write_user_table(directory: Path, table: dict[str, Any]) -> None:
    """The user table (`users_table`) as the gateway's files in `directory`, replacing the previous table whole,
    as the kubelet swaps a ConfigMap's files."""
    for old in directory.iterdir():
        if is_user_file(old.name):
            old.unlink()
    for name, text in user_files(table).items():
        (directory / name).write_text(text)


def read_user_table(directory: Path) -> dict[str, Any]:
    """The user table the gateway's files in `directory` hold."""
    users = {
        path.name[len(KEY_FILE_PREFIX) : -len(".json")]: json.loads(path.read_text())
        for path in directory.glob(f"{KEY_FILE_PREFIX}*.json")
    }
    anonymous = directory / ANONYMOUS_FILE
    return {"users": users, "anonymous": json.loads(anonymous.read_text()) if anonymous.exists() else None}


@contextmanager
def running_nginx(binary: str, directory: Path, port: int) -> Iterator[Path]:
    """`directory/nginx.conf` in the foreground until the block ends, once it accepts on `port`; yields its log."""
    log = directory / "nginx.log"
    # Appending: the access log (/dev/stdout) is reopened with O_APPEND, and the error lines written through the same
    # file without it would overwrite access-log lines already written (the tests count those lines).
    with log.open("a") as output:
        process = subprocess.Popen(
            [binary, "-e", "stderr", "-p", str(directory), "-c", str(directory / "nginx.conf"), "-g", "daemon off;"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    # The master binds the port before it forks its workers, so a connection alone does not say they run: on a busy
    # machine a test counting workers found one (CI failed so); wait for as many as nginx.conf asks.
    match = re.search(r"^\s*worker_processes\s+(\d+);", (directory / "nginx.conf").read_text(), re.MULTILINE)
    workers = int(match.group(1)) if match else 1
    try:
        deadline = time.monotonic() + 15
        while not (accepts(port) and len(worker_processes(process.pid)) >= workers):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nginx did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield log
    finally:
        process.terminate()
        process.wait(timeout=10)


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def worker_processes(master: int) -> list[int]:
    """The pids of `master`'s nginx worker processes (not its cache manager or loader), from /proc."""
    workers = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                title = (entry / "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if parent == master and title.startswith(b"nginx: worker process"):
                workers.append(int(entry.name))
    return workers


@contextmanager
def wallet_stub(gateway: Gateway, light_wallet: LightWallet) -> Iterator[Any]:
    import grpc

    assert gateway.certificate is not None
    credentials = grpc.ssl_channel_credentials(root_certificates=gateway.certificate.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{gateway.port}", credentials) as channel:
        yield light_wallet.modules.rpc.CompactTxStreamerStub(channel)


def bearer(user: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {KEYS[user]}")]
