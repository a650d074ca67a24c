"""The gateway's live harness, shared by its tests and its benchmark: the rendered gateway in Debian's nginx with
TLS, a JSON-RPC server that answers like zebrad, and a CompactTxStreamer server generated from lightwalletd's vendored
protos. Everything binds 127.0.0.1 and stops when its block ends."""

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
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UPSTREAM
from tests.debian import debian_tool
from tests.loopback_server import free_port, reply_empty, reply_json, serve_in_background
from tests.zcash_blocks import by_reference, getblock_result
from zbi_infra.access_keys import key_hash, new_key
from zbi_infra.config.access import AccessFile, parse_access
from zbi_infra.monitoring.component import PROBE_KEY_DIR, blackbox_values
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
from zbi_infra.render.gateway_metrics import PROGRAM_FILE, mtail_program
from zbi_infra.render.gateway_nginx import nginx_conf

NODE_CREDENTIALS = "zebra-rpc:node-only-password"
KEYS = {name: new_key() for name in ("exchange", "analytics", "expired", "slow", "bench", "batcher", "metered")}
JS_MODULE = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")


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


def nginx() -> str:
    return debian_tool("nginx", ["nginx-light", "libnginx-mod-http-js"], needs=(JS_MODULE,))


@dataclass
class Node:
    """A JSON-RPC server that answers like zebrad, and records the credentials each request came with."""

    server: ThreadingHTTPServer
    seen_auth: list[str] = field(default_factory=list)
    # The bodies as they arrived, byte for byte.
    received: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    # Seconds the node waits before answering (a node busy with a large answer), set by a test.
    delay: list[float] = field(default_factory=lambda: [0.0])


def node_answer(body: Any) -> tuple[bytes, int]:
    """The node's answer to a call or a batch: `getblock` of a vendored real block (an unknown one is a JSON-RPC
    error, answered alone with HTTP 500 as zcashd does), `getinfo` with an `errors` log line as zebrad gives it;
    `{"answered": method}` for anything else."""

    def answer(call: dict[str, Any]) -> dict[str, Any]:
        method, params = call.get("method"), call.get("params") or []
        result: Any = {"answered": method}
        if method == "getblock":
            result = getblock_result(params)
            if result is None:
                return {"result": None, "error": {"code": -8, "message": "Block not found"}, "id": call.get("id")}
        elif method == "getinfo":
            result = {"version": 6030000, "blocks": TIP, "errors": "WARN: peer 203.0.113.7:8233 misbehaved",
                      "errorstimestamp": 1764500000}  # fmt: skip
        return {"result": result, "error": None, "id": call.get("id")}

    if isinstance(body, list):
        return json.dumps([answer(c) for c in body]).encode(), 200
    single = answer(body)
    # zcashd (Bitcoin Core's httprpc.cpp) answers a failing single call with HTTP 500, or 404 for an unknown method.
    return json.dumps(single).encode(), 500 if single["error"] else 200


def start_node() -> Node:
    seen: list[str] = []
    received: list[bytes] = []
    headers: list[dict[str, str]] = []
    delay = [0.0]

    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as zebrad and the gateway's upstream pool use it.
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            headers.append(dict(self.headers))
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Authorization") != "Basic " + base64.b64encode(NODE_CREDENTIALS.encode()).decode():
                reply_empty(self, 401)
                return
            received.append(raw)
            time.sleep(delay[0])
            body = json.loads(raw)
            data, status = node_answer(body)
            reply_json(self, status, data)

        def log_message(self, *args: object) -> None:
            pass

    # socketserver's default backlog of 5 resets connections when 32 clients connect at once.
    server = serve_in_background(Handler, backlog=128)
    return Node(server, seen, received, headers, delay)


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
) -> Iterator[Gateway]:
    """The rendered gateway in nginx, with TLS, until the block ends (its access log copied to `metrics_syslog`);
    with `zcashd_upstream`, a zcashd sidecar's JSON-RPC at /zcashd; `access_file` instead of the harness's own."""
    file = access_file or access()
    binary = nginx()
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
    (directory / gateway_cache.JS_MODULE).write_text(gateway_cache.cache_js(cache, paths.upstream_auth_file))
    (directory / JSON_TEXT_MODULE).write_text(json_text_js())
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
        # Workers would otherwise drop to `nobody`, who cannot read a root-owned temporary directory.
        user="root" if os.geteuid() == 0 else None,
    )
    (directory / "nginx.conf").write_text(config)
    context = ssl.create_default_context(cafile=str(certificate))
    with running_nginx(binary, directory, port) as log:
        yield Gateway(f"https://127.0.0.1:{port}/", context, directory, log, node, port, certificate)


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
    with log.open("w") as output:
        process = subprocess.Popen(
            [binary, "-e", "stderr", "-p", str(directory), "-c", str(directory / "nginx.conf"), "-g", "daemon off;"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"nginx did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
        yield log
    finally:
        process.terminate()
        process.wait(timeout=10)


def mtail() -> str:
    return debian_tool("mtail", ["mtail"])


@dataclass
class Metrics:
    """mtail running the gateway's rendered metrics program: where nginx sends its log, where Prometheus scrapes."""

    syslog: str
    url: str

    def scrape(self) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample of the exposition, keyed by (name, labels...) sorted."""
        with urllib.request.urlopen(self.url, timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            match = re.match(r"^([a-z_]+)(?:\{(.*)\})? ([0-9.e+-]+)$", line)
            if match:
                labels = tuple(sorted(re.findall(r'([a-z_]+)="([^"]*)"', match.group(2) or "")))
                samples[(("__name__", match.group(1)), *labels)] = float(match.group(3))
        return samples


@contextmanager
def running_mtail(directory: Path) -> Iterator[Metrics]:
    """Debian's mtail with the program zBI renders, listening for the log on loopback UDP, until the block ends."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / PROGRAM_FILE).write_text(mtail_program())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        udp = int(probe.getsockname()[1])
    port = free_port()
    command = [mtail(), f"--progs={directory}", f"--logs=udp://127.0.0.1:{udp}", "--address=127.0.0.1",
               f"--port={port}", "--emit_prog_label=false", "--logtostderr"]  # fmt: skip
    with serving(command, directory / "mtail.log", f"http://127.0.0.1:{port}/metrics", "mtail"):
        yield Metrics(f"127.0.0.1:{udp}", f"http://127.0.0.1:{port}/metrics")


@contextmanager
def serving(command: list[str], log: Path, ready_url: str, what: str) -> Iterator[None]:
    """`command` running until the block ends, once `ready_url` answers (or the test fails within 15 s)."""
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(ready_url, timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{what} did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Blackbox:
    url: str

    def probe(self, module: str, target: str) -> float:
        """probe_success of one probe, as Prometheus would scrape it."""
        query = urllib.parse.urlencode({"module": module, "target": target})
        with urllib.request.urlopen(f"{self.url}/probe?{query}", timeout=20) as response:
            text = response.read().decode()
        match = re.search(r"^probe_success ([0-9.]+)$", text, flags=re.MULTILINE)
        assert match, text
        return float(match.group(1))


@contextmanager
def running_blackbox(directory: Path, probe_key: str) -> Iterator[Blackbox]:
    """Debian's blackbox exporter with the modules zBI configures, the probe key in its file, until the block ends."""
    binary = debian_tool("prometheus-blackbox-exporter", ["prometheus-blackbox-exporter"])
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "key").write_text(probe_key)
    modules = blackbox_values(probe_key=True)["config"]["modules"]
    text = json.dumps({"modules": modules}).replace(f"{PROBE_KEY_DIR}/key", str(directory / "key"))
    (directory / "blackbox.yml").write_text(text)  # JSON is YAML
    port = free_port()
    command = [binary, f"--config.file={directory / 'blackbox.yml'}", f"--web.listen-address=127.0.0.1:{port}"]
    with serving(command, directory / "blackbox.log", f"http://127.0.0.1:{port}/metrics", "the blackbox exporter"):
        yield Blackbox(f"http://127.0.0.1:{port}")


TIP = 3_000_000


@dataclass
class LightWallet:
    port: int
    modules: Any
    seen_metadata: list[dict[str, str]]


@contextmanager
def serving_light_wallet(out: Path) -> Iterator[LightWallet]:
    """A CompactTxStreamer server built from lightwalletd's service.proto, on loopback, stopped at the end."""
    import importlib
    import sys

    import grpc
    from grpc_tools import protoc

    protos = UPSTREAM / "lightwalletd" / "walletrpc"
    assert protoc.main(["protoc", f"-I{protos}", f"--python_out={out}", f"--grpc_python_out={out}",
                        str(protos / "service.proto"), str(protos / "compact_formats.proto")]) == 0  # fmt: skip
    sys.path.insert(0, str(out))
    try:
        pb = importlib.import_module("service_pb2")
        rpc = importlib.import_module("service_pb2_grpc")
        compact = importlib.import_module("compact_formats_pb2")
    finally:
        sys.path.remove(str(out))
    seen: list[dict[str, str]] = []

    class Streamer(rpc.CompactTxStreamerServicer):  # type: ignore[name-defined,misc]
        def GetLightdInfo(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto names it)
            seen.append(dict(context.invocation_metadata()))
            return pb.LightdInfo(version="v0.5.3", chainName="test", blockHeight=TIP)

        def GetLatestBlock(self, request: Any, context: Any) -> Any:  # noqa: N802
            seen.append(dict(context.invocation_metadata()))
            return pb.BlockID(height=TIP)

        def GetBlockRange(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
            seen.append(dict(context.invocation_metadata()))
            for height in range(request.start.height, request.end.height + 1):
                yield real_compact_block(compact, height) or compact.CompactBlock(
                    height=height, hash=height.to_bytes(32, "little")
                )

    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
    rpc.add_CompactTxStreamerServicer_to_server(Streamer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield LightWallet(port, types_namespace(pb=pb, rpc=rpc, compact=compact), seen)
    finally:
        server.stop(grace=1).wait(5)


def real_compact_block(compact: Any, height: int) -> Any:
    """The CompactBlock of a vendored real block at `height` (tests/zcash_blocks.py), or None."""
    found = by_reference(str(height))
    if found is None:
        return None
    fields = found.compact()
    vtx = [
        compact.CompactTx(
            index=tx["index"],
            txid=tx["txid"],
            spends=[compact.CompactSaplingSpend(nf=nf) for nf in tx["spends"]],
            outputs=[
                compact.CompactSaplingOutput(cmu=cmu, ephemeralKey=key, ciphertext=text)
                for cmu, key, text in tx["outputs"]
            ],
        )
        for tx in fields["vtx"]
    ]
    return compact.CompactBlock(**{**fields, "vtx": vtx})


def types_namespace(**modules: Any) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(**modules)


@contextmanager
def wallet_stub(gateway: Gateway, light_wallet: LightWallet) -> Iterator[Any]:
    import grpc

    assert gateway.certificate is not None
    credentials = grpc.ssl_channel_credentials(root_certificates=gateway.certificate.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{gateway.port}", credentials) as channel:
        yield light_wallet.modules.rpc.CompactTxStreamerStub(channel)


def bearer(user: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {KEYS[user]}")]
