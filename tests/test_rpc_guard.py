"""The RPC guard in front of zebrad: its rendered nginx.conf running in Debian's nginx on loopback, before a JSON-RPC
server that answers like zebrad (real vendored blocks), and the guard as the plan renders it in the full node's pod."""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import PlanStack
from tests.debian import debian_tool
from tests.gateway_harness import free_port, running_nginx
from tests.k8s_objects import one, pod_spec
from tests.zcash_blocks import by_reference, getblock_result
from zbi_infra.plan.engine import Plan
from zbi_infra.releases import GATEWAY
from zbi_infra.render.rpc_guard import (
    NODE_LOOPBACK_RPC_PORT,
    UNAUTHORIZED_BODY,
    authorization_include,
    rpc_guard_nginx_conf,
)

USER, PASSWORD = "zbi", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0"
TESTNET_BLOCK = "141042"  # the largest vendored block (tests/fixtures/upstream/zebra/blocks)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Upstream:
    """A JSON-RPC server standing in for zebrad on loopback: no authentication (as zebrad with its cookie off); it
    records what reached it."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str | None]] = []
        self.answers: list[bytes] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((raw, self.headers.get("Authorization")))
                body = json.loads(raw)
                calls = body if isinstance(body, list) else [body]
                results = [
                    {"jsonrpc": "2.0", "id": c.get("id"), "result": getblock_result(c.get("params") or [])}
                    if c.get("method") == "getblock"
                    else {"jsonrpc": "2.0", "id": c.get("id"), "result": {"echo": c.get("params")}}
                    for c in calls
                ]
                data = json.dumps(results if isinstance(body, list) else results[0]).encode()
                outer.answers.append(data)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def running_guard(directory: Path, upstream: Upstream) -> Iterator[int]:
    binary = debian_tool("nginx", ["nginx-light"])
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "authorization.conf").write_text(authorization_include(USER, PASSWORD))
    port = free_port()
    config = rpc_guard_nginx_conf(
        listen=f"127.0.0.1:{port}",
        upstream=upstream.address,
        authorization_file=str(directory / "authorization.conf"),
        temp_dir=str(directory),
        user="root" if os.geteuid() == 0 else None,
    )
    (directory / "nginx.conf").write_text(config)
    with running_nginx(binary, directory, port):
        yield port
        upstream.server.shutdown()


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Upstream]]:
    upstream = Upstream()
    with running_guard(tmp_path_factory.mktemp("rpc-guard"), upstream) as port:
        yield port, upstream


def post(connection: http.client.HTTPConnection, body: bytes, authorization: str | None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    connection.request("POST", "/", body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


CALL = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "getblockcount", "params": []}).encode()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        basic(USER, "wrong-password"),
        basic(USER, PASSWORD.swapcase()),  # nginx's map would let this through: its strings match case-insensitively
        basic("admin", PASSWORD),
        basic(USER, PASSWORD) + "x",
        "Bearer " + PASSWORD,
        basic(USER, PASSWORD).lower(),
    ],
)
def test_requests_without_the_credential_are_refused_before_the_node(
    guard: tuple[int, Upstream], authorization: str | None
) -> None:
    port, upstream = guard
    before = len(upstream.received)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    status, body = post(connection, CALL, authorization)
    assert status == 401
    assert json.loads(body) == json.loads(UNAUTHORIZED_BODY)
    assert json.loads(body)["error"]["code"] == -32600
    assert len(upstream.received) == before, "a refused request reached the node"


def test_the_credential_passes_and_answers_arrive_byte_for_byte_on_one_connection(
    guard: tuple[int, Upstream],
) -> None:
    port, upstream = guard
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    status, body = post(connection, CALL, basic(USER, PASSWORD))
    assert status == 200 and body == upstream.answers[-1]
    assert json.loads(body)["result"] == {"echo": []}
    # zebrad never sees the credential.
    assert upstream.received[-1][1] is None
    first_socket = connection.sock
    # A real testnet block as hex (verbosity 0), several times in a batch: megabytes, streamed through unchanged.
    block = by_reference(TESTNET_BLOCK)
    assert block is not None
    batch = [{"jsonrpc": "2.0", "id": i, "method": "getblock", "params": [TESTNET_BLOCK, 0]} for i in range(3)]
    status, body = post(connection, json.dumps(batch).encode(), basic(USER, PASSWORD))
    assert status == 200
    assert len(body) > 3 * 2 * 1_000_000, len(body)
    assert body == upstream.answers[-1]
    assert [answer["result"] for answer in json.loads(body)] == [block.raw.hex()] * 3
    # Keep-alive: both calls on the client's first connection.
    assert connection.sock is first_socket


def test_a_large_request_body_reaches_the_node_unchanged(guard: tuple[int, Upstream]) -> None:
    """sendrawtransaction of a block-sized transaction (4 MB of hex): the body limit is no narrower than the chain's."""
    port, upstream = guard
    block = by_reference(TESTNET_BLOCK)
    assert block is not None
    raw = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "sendrawtransaction", "params": [block.raw.hex()]})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    status, body = post(connection, raw.encode(), basic(USER, PASSWORD))
    assert status == 200, body[:200]
    assert upstream.received[-1][0] == raw.encode()
    assert json.loads(body)["result"] == {"echo": [block.raw.hex()]}


def test_a_missing_credential_file_stops_the_guard(tmp_path: Path) -> None:
    """Fail closed: without the Secret's file nginx does not start (the pod is never ready), it never serves open."""
    binary = debian_tool("nginx", ["nginx-light"])
    config = rpc_guard_nginx_conf(
        listen=f"127.0.0.1:{free_port()}",
        upstream="127.0.0.1:9",
        authorization_file=str(tmp_path / "absent.conf"),
        temp_dir=str(tmp_path),
        user="root" if os.geteuid() == 0 else None,
    )
    (tmp_path / "nginx.conf").write_text(config)
    result = subprocess.run(
        [binary, "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "absent.conf" in result.stderr


def test_the_credential_file_cannot_break_out_of_its_string() -> None:
    line = authorization_include("zbi", 'p"; return 200; #')
    token = line.split('"')[1]
    assert line.count('"') == 2 and token.startswith("Basic ")
    assert base64.b64decode(token.removeprefix("Basic ")).decode() == 'zbi:p"; return 200; #'
    with pytest.raises(ValueError):
        authorization_include("z:bi", "x")


# --- The guard as the plan renders it -------------------------------------------------------------------------------

PLANNED = {
    "zakura": {"network": "mainnet", "node": {"kind": "zakurad"}, "lightwallet": {"kind": "zaino"}},
    "legacy": {"network": "regtest", "node": {"kind": "zcashd", "replicas": 2}, "lightwallet": {"kind": "none"}},
}


@pytest.fixture(scope="module")
def plan(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev", merge={"zbi:instances": PLANNED})


@pytest.mark.parametrize(("namespace", "kind", "config_file"), [("zbi-testnet", "zebrad", "zebrad.toml"),
                                                                  ("zbi-zakura", "zakurad", "zakurad.toml")])  # fmt: skip
def test_the_node_rpc_is_reachable_only_through_the_guard(
    plan: Plan, namespace: str, kind: str, config_file: str
) -> None:
    statefulset = one(plan, "StatefulSet", kind, namespace)
    pod = pod_spec(statefulset)
    containers = {c["name"]: c for c in pod["containers"]}
    node, guard = containers[kind], containers["rpc-guard"]
    node_config = tomllib.loads(one(plan, "ConfigMap", f"{kind}-config", namespace)["data"][config_file])
    # The node's RPC: loopback only, never 0.0.0.0, and no container port for it.
    listen = node_config["rpc"]["listen_addr"]
    assert listen == f"127.0.0.1:{NODE_LOOPBACK_RPC_PORT}"
    assert "rpc" not in {p["name"] for p in node["ports"]}
    # The Service's RPC port targets a named port that only the guard has, and the guard forwards to that loopback.
    (service_port,) = one(plan, "Service", f"{kind}-rpc", namespace)["spec"]["ports"]
    owners = [
        c["name"] for c in pod["containers"] for p in c.get("ports", []) if p["name"] == service_port["targetPort"]
    ]
    assert owners == ["rpc-guard"]
    (guard_port,) = guard["ports"]
    assert guard_port["containerPort"] == service_port["port"]
    guard_conf = one(plan, "ConfigMap", f"{kind}-rpc-guard", namespace)["data"]["nginx.conf"]
    assert f"server {listen};" in guard_conf
    assert f"listen 0.0.0.0:{guard_port['containerPort']};" in guard_conf
    # The credential reaches the guard from the Secret (one key, read-only), never from the ConfigMap.
    assert "Basic " not in guard_conf
    volumes = {v["name"]: v for v in pod["volumes"]}
    credential = volumes["rpc-guard-credential"]["secret"]
    assert credential["secretName"] == "rpc-credentials"
    assert credential["items"] == [{"key": "rpc-guard-authorization.conf", "path": "rpc-guard-authorization.conf"}]
    mounts = {m["name"]: m for m in guard["volumeMounts"]}
    assert f"include {mounts['rpc-guard-credential']['mountPath']}/rpc-guard-authorization.conf;" in guard_conf
    assert all(m.get("readOnly") for name, m in mounts.items() if name != "rpc-guard-tmp")
    # Hardened like every container, with probes, resources, and the gateway's pinned image as its own user.
    assert guard["image"] == f"{GATEWAY.repository}:{GATEWAY.tag}"
    assert guard["securityContext"]["runAsUser"] == GATEWAY.uid
    assert guard["securityContext"]["readOnlyRootFilesystem"] is True
    assert guard["securityContext"]["allowPrivilegeEscalation"] is False
    assert guard["readinessProbe"]["tcpSocket"]["port"] == "rpc" and guard["livenessProbe"]
    assert guard["resources"]["requests"] and guard["resources"]["limits"]
    # The node's own readiness (its health port) still decides whether the pod serves RPC.
    assert node["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "health"}
    assert "zbi.io/rpc-guard-checksum" in statefulset["spec"]["template"]["metadata"]["annotations"]


def test_zcashd_authenticates_itself_and_has_no_guard(plan: Plan) -> None:
    pod = pod_spec(one(plan, "StatefulSet", "zcashd", "zbi-legacy"))
    (zcashd,) = pod["containers"]
    assert {p["name"]: p["containerPort"] for p in zcashd["ports"]}["rpc"] == 18232
    assert "-rpcpassword=$(RPC_PASSWORD)" in zcashd["command"]
