"""The rate buckets on both engines, live: nginx's limit_req zones (njs) and the Lua engine's shared dictionary
(zbi_rate.lua) are each one count for all of a replica's workers, charge a batch call by call, and count only the
requests nginx's limits would see. And what each engine's nginx.conf holds for them."""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.gateway_harness import Gateway, access, running_gateway, start_node
from zbi_infra.access_keys import key_hash, new_key
from zbi_infra.config.access import parse_access
from zbi_infra.render.gateway import WORKER_PROCESSES, GatewayPaths
from zbi_infra.render.gateway_engines import Engine
from zbi_infra.render.gateway_nginx import nginx_conf

KEYS = {name: new_key() for name in ("burst", "batcher", "slow")}
# `burst`: 1 a second with a burst of 9, so 10 calls at once; `batcher` 1 a second, burst 5; `slow` 1, burst 1.
LIMITS = {"burst": (1, 9), "batcher": (1, 5), "slow": (1, 1)}
GRPC_PATH = "/cash.z.wallet.sdk.rpc.CompactTxStreamer/GetLatestBlock"


@pytest.fixture(scope="module")
def gateway(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    users = [
        {"name": name, "keySha256": key_hash(KEYS[name]), "rateLimit": {"requestsPerSecond": rate, "burst": burst}}
        for name, (rate, burst) in LIMITS.items()
    ]
    file = parse_access(
        {"jsonRpc": {"methods": ["getblockcount"]}, "grpc": {"methods": ["GetLatestBlock"]}, "users": users},
        "access/rates.yaml",
    )
    node = start_node()
    try:
        with running_gateway(
            tmp_path_factory.mktemp("rates"),
            f"127.0.0.1:{node.server.server_port}",
            node,
            access_file=file,
            grpc_upstream="127.0.0.1:9",
            engine=engine,
        ) as running:
            yield running
    finally:
        node.server.shutdown()


def authorization(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{KEYS[user]}".encode()).decode()


def post(connection: http.client.HTTPSConnection, user: str, body: object) -> int:
    headers = {"Content-Type": "application/json", "Authorization": authorization(user)}
    connection.request("POST", "/", body=json.dumps(body), headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def call(gateway: Gateway, user: str, body: object) -> int:
    connection = http.client.HTTPSConnection("127.0.0.1", gateway.port, context=gateway.context, timeout=10)
    try:
        return post(connection, user, body)
    finally:
        connection.close()


def workers_of(gateway: Gateway) -> list[int]:
    master = int((gateway.config_dir / "nginx.pid").read_text())
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            if parent == master:
                children.append(int(entry.name))
    return children


def serving_worker(gateway: Gateway, connection: http.client.HTTPSConnection, workers: list[int]) -> int:
    """The worker holding the gateway's end of `connection`: its socket's inode (/proc/net/tcp, by both ports)
    among the workers' descriptors."""
    client_port = connection.sock.getsockname()[1]
    inode = next(
        fields[9]
        for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
        if int(fields[1].split(":")[1], 16) == gateway.port and int(fields[2].split(":")[1], 16) == client_port
    )
    for worker in workers:
        for descriptor in Path(f"/proc/{worker}/fd").iterdir():
            try:
                if str(descriptor.readlink()) == f"socket:[{inode}]":
                    return worker
            except OSError:
                continue
    raise LookupError(f"no worker holds port {client_port}'s connection")


def connections_on_each_worker(gateway: Gateway, per_worker: int) -> dict[int, list[http.client.HTTPSConnection]]:
    """`per_worker` kept-alive connections held by each worker (opened eight at once, as nginx spreads connections
    arriving together), the rest closed."""
    workers = workers_of(gateway)
    assert len(workers) == WORKER_PROCESSES
    held: dict[int, list[http.client.HTTPSConnection]] = {worker: [] for worker in workers}

    def opened(_: int) -> http.client.HTTPSConnection:
        connection = http.client.HTTPSConnection("127.0.0.1", gateway.port, context=gateway.context, timeout=10)
        connection.connect()
        return connection

    for _ in range(16):
        with ThreadPoolExecutor(max_workers=8) as pool:
            for connection in pool.map(opened, range(8)):
                mine = held[serving_worker(gateway, connection, workers)]
                if len(mine) < per_worker:
                    mine.append(connection)
                else:
                    connection.close()
        if all(len(mine) == per_worker for mine in held.values()):
            return held
    pytest.fail(f"nginx gave connections to one worker only: {[len(c) for c in held.values()]}")


def test_a_burst_across_both_workers_is_held_to_burst_plus_one(gateway: Gateway) -> None:
    """Four connections on each worker send calls of one user at once, each until refused (a 429 closes its
    connection) or four sent: 10 pass in all (the burst of 9 and the call itself), and what 1/s refilled while they
    ran; a count per worker would pass 10 on each."""
    rate, burst = LIMITS["burst"]
    held = connections_on_each_worker(gateway, per_worker=4)

    def statuses(connection: http.client.HTTPSConnection) -> list[int]:
        answered = []
        for i in range(4):
            answered.append(post(connection, "burst", {"method": "getblockcount", "id": i}))
            if answered[-1] == 429:
                break
        connection.close()
        return answered

    started = time.monotonic()
    connections = [c for mine in held.values() for c in mine]
    with ThreadPoolExecutor(max_workers=len(connections)) as pool:
        answers = list(pool.map(statuses, connections))
    elapsed = time.monotonic() - started
    passed = sum(a.count(200) for a in answers)
    assert burst + 1 <= passed <= burst + 1 + int(rate * elapsed), (answers, elapsed)
    assert {s for a in answers for s in a} == {200, 429}
    # Every connection, on either worker, was answered.
    assert all(answers), answers


def test_a_batch_is_charged_call_by_call(gateway: Gateway) -> None:
    """1/s with a burst of 5 (6 at once): a batch of 4 passes; a batch of 3 then has room for 2 of its calls, which
    stay counted, and is refused; so is a single call then; a second later there is room for one call again."""
    batch = [{"method": "getblockcount", "id": i} for i in range(4)]
    assert call(gateway, "batcher", batch) == 200
    assert call(gateway, "batcher", batch[:3]) == 429
    assert call(gateway, "batcher", batch[0]) == 429
    time.sleep(1.2)
    assert [call(gateway, "batcher", batch[0]) for _ in range(2)] == [200, 429]


def test_requests_refused_before_the_limits_are_not_charged(gateway: Gateway) -> None:
    """A GET of a gRPC method is refused (405) before nginx's limits, so it costs no call of the caller's bucket (the
    Lua engine charges in who(), before nginx's method check: it must skip those)."""
    headers = {"Authorization": f"Bearer {KEYS['slow']}"}
    for _ in range(3):
        connection = http.client.HTTPSConnection("127.0.0.1", gateway.port, context=gateway.context, timeout=10)
        try:
            connection.request("GET", GRPC_PATH, headers=headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 405
        finally:
            connection.close()
    statuses = [call(gateway, "slow", {"method": "getblockcount", "id": i}) for i in range(3)]
    assert statuses == [200, 200, 429]


@pytest.mark.parametrize("engine", ["njs", "lua"])
def test_only_the_njs_engine_has_nginx_count_the_buckets(engine: Engine) -> None:
    """njs: a limit_req zone, map and limit_req per bucket, and the meter server. Lua: none of them, its shared
    dictionary instead; the refused keys' zone and the caps of requests in progress stay in both."""
    paths = GatewayPaths(config_dir="/c", upstream_auth_file="/a")
    conf = nginx_conf(access(), paths, listen="127.0.0.1:1", rpc_upstream="127.0.0.1:2", engine=engine,
                      grpc_upstream="127.0.0.1:3", zcashd_upstream="127.0.0.1:4")  # fmt: skip
    per_bucket = ("limit_req zone=r1b1 ", "limit_req_zone $zbi_rate_r1b1 ", "map $zbi_bucket $zbi_rate_r1b1 ")
    meter = ("upstream zbi_meter", "zbi-meter.sock", "map $zbi_who ")
    for text in per_bucket + meter:
        assert (text in conf) == (engine == "njs"), text
    assert ("lua_shared_dict zbi_rate " in conf) == (engine == "lua")
    assert "limit_req zone=zbi_auth_failures burst=20 nodelay;" in conf
    # The caps in the JSON-RPC, gRPC and zcashd locations alike.
    assert conf.count("limit_conn zbi_caller ") == 3
    # The Lua engine charges where the caps are, and nowhere else.
    assert conf.count("zbi.who(true)") == (3 if engine == "lua" else 0)
