#!/usr/bin/env python3
"""The access gateway against direct calls, on loopback, with the test harness's upstreams (a zebrad-like JSON-RPC
server and a CompactTxStreamer server from lightwalletd's protos): JSON-RPC `getblockcount` and gRPC
`GetLatestBlock` throughput at 32 concurrent clients, the p99 latency the gateway adds, `GetBlockRange` blocks per
second, and the gateway's memory. Prints numbers; asserts nothing.

    python3 -m uv run python benchmarks/gateway.py [--requests 3000] [--clients 32] [--load-only]

First, benchmarks/gateway_load.py: wrk and h2load against fixed-body nginx upstreams, the gateway beside plain nginx
proxying, large answers, batches and the slow-body attack's memory. Then the Python-client comparison below.

The gateway speaks TLS (as in production); the direct calls are plaintext, so the ratios include TLS's cost. The
clients are Python threads: on a small machine they, not the gateway, can be the bottleneck of both paths.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import ssl
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

import benchmarks.gateway_load as gateway_load
from tests.gateway_harness import (
    KEYS,
    NODE_CREDENTIALS,
    TIP,
    Gateway,
    LightWallet,
    running_gateway,
    serving_light_wallet,
    start_node,
)


def json_rpc_run(connect, auth: str, requests: int, clients: int) -> tuple[float, list[float]]:
    body = json.dumps({"jsonrpc": "1.0", "method": "getblockcount", "params": [], "id": 1})
    per_client = requests // clients

    def client(_: int) -> list[float]:
        connection = connect()
        latencies = []
        for _ in range(per_client):
            start = time.perf_counter()
            connection.request("POST", "/", body, {"Authorization": auth, "Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            latencies.append(time.perf_counter() - start)
        connection.close()
        return latencies

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        latencies = [x for chunk in pool.map(client, range(clients)) for x in chunk]
    return len(latencies) / (time.perf_counter() - start), latencies


def grpc_run(channel_factory, metadata, light_wallet: LightWallet, requests: int, clients: int) -> float:
    pb, rpc = light_wallet.modules.pb, light_wallet.modules.rpc
    per_client = requests // clients

    def client(_: int) -> int:
        with channel_factory() as channel:
            stub = rpc.CompactTxStreamerStub(channel)
            for _ in range(per_client):
                stub.GetLatestBlock(pb.ChainSpec(), metadata=metadata, timeout=30)
        return per_client

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        done = sum(pool.map(client, range(clients)))
    return done / (time.perf_counter() - start)


def block_range(channel_factory, metadata, light_wallet: LightWallet, blocks: int) -> float:
    pb, rpc = light_wallet.modules.pb, light_wallet.modules.rpc
    with channel_factory() as channel:
        stub = rpc.CompactTxStreamerStub(channel)
        start = time.perf_counter()
        request = pb.BlockRange(start=pb.BlockID(height=TIP - blocks + 1), end=pb.BlockID(height=TIP))
        count = sum(1 for _ in stub.GetBlockRange(request, metadata=metadata, timeout=300))
        return count / (time.perf_counter() - start)


def nginx_rss_mib(directory: Path) -> float:
    master = int((directory / "nginx.pid").read_text())
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().split()
            if int(entry.name) == master or int(stat[3]) == master:
                status = (entry / "status").read_text()
                total += int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
        except (OSError, StopIteration):
            continue
    return total / 1024


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=8, help="each wrk run")
    parser.add_argument("--load-only", action="store_true", help="only the wrk/h2load part")
    args = parser.parse_args()
    print("== wrk and h2load against fixed-body nginx upstreams: the gateway beside plain nginx proxying ==")
    gateway_load.report(seconds=args.seconds)
    if args.load_only:
        return
    print("== Python clients against the tests' Python upstreams (their own bottleneck on a small machine) ==")
    node = start_node()
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        (root / "walletrpc").mkdir()
        (root / "gateway").mkdir()
        with (
            serving_light_wallet(root / "walletrpc") as light_wallet,
            running_gateway(
                root / "gateway",
                f"127.0.0.1:{node.server.server_port}",
                node,
                grpc_upstream=f"127.0.0.1:{light_wallet.port}",
            ) as gateway,
        ):
            report(args, node.server.server_port, light_wallet, gateway)
    node.server.shutdown()


def report(args: argparse.Namespace, node_port: int, light_wallet: LightWallet, gateway: Gateway) -> None:
    assert gateway.certificate is not None
    context = ssl.create_default_context(cafile=str(gateway.certificate))
    user_auth = "Basic " + base64.b64encode(f"bench:{KEYS['bench']}".encode()).decode()
    node_auth = "Basic " + base64.b64encode(NODE_CREDENTIALS.encode()).decode()

    direct_rps, direct_latency = json_rpc_run(
        lambda: http.client.HTTPConnection("127.0.0.1", node_port, timeout=30), node_auth, args.requests, args.clients
    )
    gateway_rps, gateway_latency = json_rpc_run(
        lambda: http.client.HTTPSConnection("127.0.0.1", gateway.port, timeout=30, context=context),
        user_auth,
        args.requests,
        args.clients,
    )
    credentials = grpc.ssl_channel_credentials(root_certificates=gateway.certificate.read_bytes())
    bearer = [("authorization", f"Bearer {KEYS['bench']}")]

    def direct_channel():
        return grpc.insecure_channel(f"127.0.0.1:{light_wallet.port}")

    def gateway_channel():
        return grpc.secure_channel(f"127.0.0.1:{gateway.port}", credentials)

    grpc_direct = grpc_run(direct_channel, [], light_wallet, args.requests, args.clients)
    grpc_gateway = grpc_run(gateway_channel, bearer, light_wallet, args.requests, args.clients)
    blocks_direct = block_range(direct_channel, [], light_wallet, args.blocks)
    blocks_gateway = block_range(gateway_channel, bearer, light_wallet, args.blocks)

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"
    print(f"machine: {machine}, Python {platform.python_version()}")
    print(f"clients: {args.clients}, requests per path: {args.requests}, blocks: {args.blocks}")
    print(f"JSON-RPC getblockcount: direct {direct_rps:.0f}/s, gateway {gateway_rps:.0f}/s, "
          f"ratio {gateway_rps / direct_rps:.2f} (goal >= 0.7)")  # fmt: skip
    added = (p99(gateway_latency) - p99(direct_latency)) * 1000
    print(f"JSON-RPC p99: direct {p99(direct_latency) * 1000:.2f} ms, gateway {p99(gateway_latency) * 1000:.2f} ms, "
          f"added {added:.2f} ms (goal <= 2 ms)")  # fmt: skip
    print(f"gRPC GetLatestBlock: direct {grpc_direct:.0f}/s, gateway {grpc_gateway:.0f}/s, "
          f"ratio {grpc_gateway / grpc_direct:.2f} (goal >= 0.7)")  # fmt: skip
    print(f"gRPC GetBlockRange: direct {blocks_direct:.0f} blocks/s, gateway {blocks_gateway:.0f} blocks/s, "
          f"ratio {blocks_gateway / blocks_direct:.2f} (goal >= 0.8)")  # fmt: skip
    print(f"gateway memory (nginx master and workers, RSS): {nginx_rss_mib(gateway.config_dir):.1f} MiB")


if __name__ == "__main__":
    main()
