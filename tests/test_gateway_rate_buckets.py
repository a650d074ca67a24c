"""The rate buckets on both engines, live: nginx's limit_req zones (njs) and the Lua engine's shared dictionary
(zbi_rate.lua) are each one count for all of a replica's workers, charge a batch call by call, and count only the
requests nginx's limits would see. And what each engine's nginx.conf holds for them."""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.gateway_harness import Gateway, access, gateway_before_a_node, worker_processes
from zbi_infra.access_keys import key_hash, new_key
from zbi_infra.config.access import parse_access
from zbi_infra.render.gateway import WORKER_PROCESSES, GatewayPaths, rate_buckets
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
    with gateway_before_a_node(
        tmp_path_factory.mktemp("rates"), access_file=file, grpc_upstream="127.0.0.1:9", engine=engine
    ) as running:
        yield running


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
    return worker_processes(int((gateway.config_dir / "nginx.pid").read_text()))


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
    # A dictionary per bucket, as njs's zones: a full one forgets its own keys only.
    for bucket in rate_buckets(access()):
        assert (f"lua_shared_dict zbi_rate_{bucket} 10m;" in conf) == (engine == "lua"), bucket
    assert "limit_req zone=zbi_auth_failures burst=20 nodelay;" in conf
    # The caps in the JSON-RPC, gRPC and zcashd locations alike.
    assert conf.count("limit_conn zbi_caller ") == 3
    # The Lua engine charges where the caps are, and nowhere else.
    assert conf.count("zbi.who(true)") == (3 if engine == "lua" else 0)


# In nginx, the real zbi_rate.lua with the dictionaries and configuration nginx.conf gets for the access file of the
# test below: a user of the bucket of 1/s with a burst of 10 takes its 11 calls, then 350,000 anonymous addresses
# take one call each (as many requests from as many addresses would: more than all buckets' dictionaries together
# hold), then the user again.
EVICTION_PROBE = r"""
local rate = require "zbi_rate"
local victim = "user:patient"
local before = 0
for _ = 1, 12 do before = before + (rate.take(victim, "r1b10", 1) and 1 or 0) end
local started = ngx.now()
for i = 1, 350000 do
    rate.take(string.format("anon:10.%d.%d.%d", math.floor(i / 65536) % 256, math.floor(i / 256) % 256, i % 256),
        "r5b20", 1)
end
ngx.update_time()
local after = 0
for _ = 1, 12 do after = after + (rate.take(victim, "r1b10", 1) and 1 or 0) end
ngx.say(before, " ", after, " ", ngx.now() - started)
"""


def test_anonymous_callers_cannot_push_out_a_users_bucket(tmp_path: Path) -> None:
    """Each bucket has a dictionary of its own, as each of njs's buckets a zone: filling the anonymous bucket's
    forgets anonymous keys only. In one dictionary for all (a review), the anonymous keys pushed a user's entry out
    while its bucket was still counting: a whole new burst passed where nginx's rule passes one call a second."""
    from tests.gateway_harness import free_port, lua_module_paths, nginx
    from zbi_infra.render.gateway_engines import LUA_RATE_MODULE, lua_modules
    from zbi_infra.render.gateway_rate import lua_configuration, lua_dictionary

    # Two buckets (the user's, the anonymous callers', the monitoring probe's among them): 20 MiB in one dictionary,
    # about 160,000 keys, which the 350,000 anonymous calls below overflow.
    small = parse_access(
        {
            "jsonRpc": {"methods": ["getblockcount"]},
            "anonymous": {"jsonRpc": ["getblockcount"], "rateLimit": {"requestsPerSecond": 5, "burst": 20}},
            "users": [{"name": "patient", "keySha256": key_hash(new_key()),
                       "rateLimit": {"requestsPerSecond": 1, "burst": 10}}],
        },
        "access/small.yaml",
    )  # fmt: skip
    buckets = rate_buckets(small)
    assert set(buckets) == {"r1b10", "r5b20"}
    directory = str(tmp_path)
    paths = GatewayPaths(config_dir=directory, upstream_auth_file=f"{directory}/a")
    (tmp_path / LUA_RATE_MODULE).write_text(lua_modules(paths)[LUA_RATE_MODULE])
    (tmp_path / "probe.lua").write_text(EVICTION_PROBE)
    port = free_port()
    modules = "".join(f"load_module {path};\n" for path in lua_module_paths())
    temp = "".join(
        f"    {kind}_temp_path {directory};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        # As root (CI), the worker would run as nobody, which cannot read pytest's directories.
        f"{modules}{'user root;' if os.geteuid() == 0 else ''}\nworker_processes 1;\npid {directory}/nginx.pid;\nevents {{}}\nhttp {{\n    access_log off;\n{temp}"
        f'    lua_package_path "{directory}/?.lua;;";\n{lua_dictionary(buckets)}'
        f"    init_by_lua_block {{ {lua_configuration(buckets)} }}\n"
        f"    server {{ listen 127.0.0.1:{port}; location / {{ content_by_lua_file {directory}/probe.lua; }} }}\n}}\n"
    )
    process = subprocess.Popen(
        [nginx("lua"), "-e", "stderr", "-p", directory, "-c", f"{directory}/nginx.conf", "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "error.log").open("w"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=120) as answer:
                    before, after, seconds = answer.read().decode().split()
                break
            except urllib.error.URLError as error:
                if isinstance(error, urllib.error.HTTPError):
                    raise
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=10)
    # The burst, then only what a second's draining gives back during the anonymous calls (and one to round).
    assert int(before) == 11
    assert float(seconds) < 9, "too slow a machine to tell a new burst (11) from a second's calls"
    assert int(after) <= int(float(seconds)) + 1
