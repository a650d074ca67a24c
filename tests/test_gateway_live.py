"""The access gateway's JSON-RPC side, live: the nginx.conf and njs module zBI renders run in Debian's nginx on
loopback, with TLS, in front of a JSON-RPC server that answers like zebrad (JSON-RPC over HTTP, basic auth with the
node's own credentials); a real HTTP client calls it as end users would. Every server binds 127.0.0.1, every call
has a timeout, and the fixture stops nginx and the node at the end."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UPSTREAM
from tests.debian import debian_tool
from zbi_infra.access_keys import key_hash, new_key
from zbi_infra.config.access import AccessFile, light_wallet_service, parse_access
from zbi_infra.render.gateway import USERS_FILE, GatewayPaths, gateway_js, nginx_conf, users_table

NODE_CREDENTIALS = "zebra-rpc:node-only-password"
KEYS = {name: new_key() for name in ("exchange", "analytics", "expired", "slow")}
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
                "rateLimit": {"requestsPerSecond": 50, "burst": 100},
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


def start_node() -> Node:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.headers.get("Authorization") != "Basic " + base64.b64encode(NODE_CREDENTIALS.encode()).decode():
                self.send_response(401)
                self.end_headers()
                return

            def answer(call: dict[str, Any]) -> dict[str, Any]:
                return {"result": {"answered": call["method"]}, "error": None, "id": call.get("id")}

            data = json.dumps([answer(c) for c in body] if isinstance(body, list) else answer(body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Node(server, seen)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
    directory: Path, rpc_upstream: str, node: Node | None, grpc_upstream: str | None = None
) -> Iterator[Gateway]:
    """The rendered gateway in nginx, with TLS, until the block ends."""
    binary = nginx()
    certificate, key = tls_files(directory)
    paths = GatewayPaths(
        config_dir=str(directory),
        upstream_auth_file=str(directory / "upstream-auth"),
        tls_certificate=str(certificate),
        tls_key=str(key),
    )
    (directory / "upstream-auth").write_text(NODE_CREDENTIALS + "\n")
    (directory / USERS_FILE).write_text(json.dumps(users_table(access())))
    (directory / "gateway.js").write_text(gateway_js(paths))
    port = free_port()
    config = nginx_conf(
        access(),
        paths,
        listen=f"127.0.0.1:{port}",
        rpc_upstream=rpc_upstream,
        grpc_upstream=grpc_upstream,
        max_body_bytes=16 * 1024,
        js_module_path=str(JS_MODULE),
        temp_dir=str(directory),
        # Workers would otherwise drop to `nobody`, who cannot read a root-owned temporary directory.
        user="root" if os.geteuid() == 0 else None,
    )
    (directory / "nginx.conf").write_text(config)
    log = directory / "nginx.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [binary, "-e", "stderr", "-p", str(directory), "-c", str(directory / "nginx.conf"), "-g", "daemon off;"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    context = ssl.create_default_context(cafile=str(certificate))
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
        yield Gateway(f"https://127.0.0.1:{port}/", context, directory, log, node, port, certificate)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, light_wallet: LightWallet) -> Iterator[Gateway]:
    node = start_node()
    try:
        with running_gateway(
            tmp_path_factory.mktemp("gateway"),
            f"127.0.0.1:{node.server.server_port}",
            node,
            grpc_upstream=f"127.0.0.1:{light_wallet.port}",
        ) as running:
            yield running
    finally:
        node.server.shutdown()


def test_an_allowed_call_reaches_the_node_with_the_nodes_credentials_only(gateway: Gateway) -> None:
    status, body = gateway.call({"jsonrpc": "1.0", "method": "getblockcount", "params": [], "id": 7})
    assert (status, body) == (200, {"result": {"answered": "getblockcount"}, "error": None, "id": 7})
    node_auth = "Basic " + base64.b64encode(NODE_CREDENTIALS.encode()).decode()
    assert gateway.node.seen_auth[-1] == node_auth
    assert not any(KEYS["exchange"] in base64.b64decode(a.split()[-1]).decode() for a in gateway.node.seen_auth if a)


def test_a_method_outside_the_users_set_gets_a_json_rpc_error(gateway: Gateway) -> None:
    status, body = gateway.call({"method": "getblock", "params": ["1"], "id": "a"}, user="analytics")
    assert status == 200 and body["id"] == "a" and body["result"] is None
    assert body["error"]["code"] == -32601 and "getblock" in body["error"]["message"]
    # A method the instance does not expose at all, and one no file may expose.
    for method in ("getpeerinfo", "stop"):
        status, body = gateway.call({"method": method, "id": 1})
        assert status == 200 and body["error"]["code"] == -32601


def test_a_batch_is_checked_element_by_element(gateway: Gateway) -> None:
    batch = [
        {"method": "getblockcount", "id": 1},
        {"method": "stop", "id": 2},
        {"method": "getblockchaininfo", "id": 3},
        {"id": 4},
    ]
    before = len(gateway.node.seen_auth)
    status, body = gateway.call(batch)
    assert status == 200 and [answer["id"] for answer in body] == [1, 2, 3, 4]
    assert body[0]["result"] == {"answered": "getblockcount"} and body[2]["result"] == {"answered": "getblockchaininfo"}
    assert body[1]["error"]["code"] == -32601 and body[3]["error"]["code"] == -32601
    assert len(gateway.node.seen_auth) == before + 1  # one forwarded batch, of the allowed calls only
    status, body = gateway.call([{"method": "stop", "id": 1}])
    assert status == 200 and body[0]["error"]["code"] == -32601
    assert len(gateway.node.seen_auth) == before + 1


@pytest.mark.parametrize(
    ("user", "key"),
    [
        ("exchange", "zbik_wrong"),  # wrong key
        ("analytics", KEYS["exchange"]),  # another user's key
        ("expired", None),  # expired
        ("revoked", new_key()),  # not in the table
    ],
)
def test_bad_keys_get_401(gateway: Gateway, user: str, key: str | None) -> None:
    status, body = gateway.call({"method": "getblockcount", "id": 1}, user=user, key=key)
    assert status == 401 and body["error"]["code"] == -32600


def test_anonymous_clients_get_the_anonymous_profile(gateway: Gateway) -> None:
    assert gateway.call({"method": "getinfo", "id": 1}, user=None)[1]["result"] == {"answered": "getinfo"}
    status, body = gateway.call({"method": "getblockcount", "id": 1}, user=None)
    assert status == 200 and body["error"]["code"] == -32601


def test_bad_requests(gateway: Gateway) -> None:
    status, body = gateway.call(None, raw=b"{not json")
    assert status == 400 and body["error"]["code"] == -32700
    status, body = gateway.call(None, raw=json.dumps({"method": "getblock", "params": ["x" * 20000]}).encode())
    assert status == 413 and body["error"]["message"] == "request body too large"


def test_the_rate_limit_is_reached_and_recovers(gateway: Gateway) -> None:
    statuses = [gateway.call({"method": "getblockcount", "id": i}, user="slow")[0] for i in range(6)]
    assert statuses[0] == 200 and 429 in statuses
    limited = gateway.call({"method": "getblockcount", "id": 1}, user="slow")
    assert limited[0] == 429 and limited[1]["error"]["code"] == -32005
    time.sleep(2.2)
    assert gateway.call({"method": "getblockcount", "id": 1}, user="slow")[0] == 200
    # Another user's budget is their own.
    assert gateway.call({"method": "getblockcount", "id": 1})[0] == 200


def test_concurrent_clients(gateway: Gateway) -> None:
    def one(i: int) -> int:
        return gateway.call({"method": "getblockcount", "id": i})[0]

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert list(pool.map(one, range(200))) == [200] * 200


def test_keys_rotate_and_revoke_without_a_restart(gateway: Gateway) -> None:
    table = gateway.config_dir / USERS_FILE
    original = table.read_text()
    rotated = dict(KEYS, exchange=new_key())
    try:
        table.write_text(json.dumps(users_table(access(rotated))))
        assert gateway.call({"method": "getblockcount", "id": 1})[0] == 401
        assert gateway.call({"method": "getblockcount", "id": 1}, key=rotated["exchange"])[0] == 200
    finally:
        table.write_text(original)
    assert gateway.call({"method": "getblockcount", "id": 1})[0] == 200


def test_the_node_down_is_a_clean_502(tmp_path: Path) -> None:
    with running_gateway(tmp_path, f"127.0.0.1:{free_port()}", None) as down:
        status, body = down.call({"method": "getblockcount", "id": 1})
        assert status == 502 and body["error"]["message"] == "the node is unavailable"
        # Refusals need no node: they are still answered.
        assert down.call({"method": "stop", "id": 2})[1]["error"]["code"] == -32601


def test_the_access_log_names_the_user_never_the_key(gateway: Gateway) -> None:
    gateway.call({"method": "getblockcount", "id": 1})
    time.sleep(0.2)
    entries = [json.loads(line) for line in gateway.log.read_text().splitlines() if line.startswith("{")]
    assert any(e["user"] == "exchange" and e["methods"] == "getblockcount" for e in entries)
    text = gateway.log.read_text()
    assert not any(key in text for key in KEYS.values())


# ---- gRPC: lightwalletd's service, generated from its vendored protos --------------------------------------------

TIP = 3_000_000


@dataclass
class LightWallet:
    port: int
    modules: Any
    seen_metadata: list[dict[str, str]]


@pytest.fixture(scope="module")
def light_wallet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LightWallet]:
    """A CompactTxStreamer server built from lightwalletd's service.proto, on loopback, stopped at the end."""
    import importlib
    import sys

    import grpc
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("walletrpc")
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
                yield compact.CompactBlock(height=height, hash=height.to_bytes(32, "little"))

    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    rpc.add_CompactTxStreamerServicer_to_server(Streamer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield LightWallet(port, types_namespace(pb=pb, rpc=rpc, compact=compact), seen)
    finally:
        server.stop(grace=1).wait(5)


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


def test_grpc_calls_pass_with_a_key_and_the_key_stays_at_the_gateway(
    gateway: Gateway, light_wallet: LightWallet
) -> None:
    pb = light_wallet.modules.pb
    with wallet_stub(gateway, light_wallet) as stub:
        assert stub.GetLatestBlock(pb.ChainSpec(), metadata=bearer("exchange"), timeout=10).height == TIP
        assert stub.GetLightdInfo(pb.Empty(), metadata=bearer("exchange"), timeout=10).chainName == "test"
    assert light_wallet.seen_metadata and all("authorization" not in m for m in light_wallet.seen_metadata)


def test_refused_grpc_calls_get_grpc_statuses(gateway: Gateway, light_wallet: LightWallet) -> None:
    import grpc

    pb = light_wallet.modules.pb
    service, methods = light_wallet_service()
    assert service == "cash.z.wallet.sdk.rpc.CompactTxStreamer" and "GetTransaction" in methods
    with wallet_stub(gateway, light_wallet) as stub:
        cases = [
            (lambda: stub.GetLatestBlock(pb.ChainSpec(), metadata=[("authorization", "Bearer zbik_wrong")], timeout=10),
             grpc.StatusCode.UNAUTHENTICATED),
            (lambda: stub.GetLatestBlock(pb.ChainSpec(), metadata=bearer("expired"), timeout=10),
             grpc.StatusCode.UNAUTHENTICATED),
            # Narrower user; a method the instance does not expose; anonymous outside its profile.
            (lambda: stub.GetLightdInfo(pb.Empty(), metadata=bearer("analytics"), timeout=10),
             grpc.StatusCode.PERMISSION_DENIED),
            (lambda: stub.GetTransaction(pb.TxFilter(), metadata=bearer("exchange"), timeout=10),
             grpc.StatusCode.PERMISSION_DENIED),
            (lambda: stub.GetLatestBlock(pb.ChainSpec(), timeout=10), grpc.StatusCode.PERMISSION_DENIED),
        ]  # fmt: skip
        for call, code in cases:
            with pytest.raises(grpc.RpcError) as raised:
                call()
            assert raised.value.code() == code, raised.value
        # Anonymous wallets get their profile.
        assert stub.GetLightdInfo(pb.Empty(), timeout=10).blockHeight == TIP
        assert stub.GetLatestBlock(pb.ChainSpec(), metadata=bearer("analytics"), timeout=10).height == TIP


def test_a_ten_thousand_block_stream_passes_through(gateway: Gateway, light_wallet: LightWallet) -> None:
    pb = light_wallet.modules.pb
    start = TIP - 10_000 + 1
    with wallet_stub(gateway, light_wallet) as stub:
        blocks = stub.GetBlockRange(
            pb.BlockRange(start=pb.BlockID(height=start), end=pb.BlockID(height=TIP)),
            metadata=bearer("exchange"),
            timeout=120,
        )
        heights = [block.height for block in blocks]
    assert heights == list(range(start, TIP + 1))


def test_the_light_wallet_server_down_is_unavailable(tmp_path: Path, light_wallet: LightWallet) -> None:
    import grpc

    closed = f"127.0.0.1:{free_port()}"
    with (
        running_gateway(tmp_path, closed, None, grpc_upstream=closed) as down,
        wallet_stub(down, light_wallet) as stub,
        pytest.raises(grpc.RpcError) as raised,
    ):
        stub.GetLatestBlock(light_wallet.modules.pb.ChainSpec(), metadata=bearer("exchange"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_grpc_rate_limit_is_resource_exhausted(gateway: Gateway, light_wallet: LightWallet) -> None:
    import grpc

    codes = []
    with wallet_stub(gateway, light_wallet) as stub:
        for _ in range(6):
            try:
                stub.GetLatestBlock(light_wallet.modules.pb.ChainSpec(), metadata=bearer("slow"), timeout=10)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes and set(codes) <= {
        grpc.StatusCode.OK,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
