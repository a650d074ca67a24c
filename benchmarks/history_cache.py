"""The gateway's history cache against the node path, through the same gateway, in one run: Debian's `wrk` (JSON-RPC
over HTTP/1.1 and TLS) sends `getblock` by height (verbosity 1) of the four vendored real blocks, in turn, to the
rendered gateway (nginx.conf, gateway.js, gateway_cache.js) in front of tests/history_node.py answering like zebrad
after a realistic node latency.

Uncached: the same rendered gateway with history.cache off (every call goes to the node, as any read near the tip
does with the cache on). Cached: the gateway with the cache on, the node's tip 5,000 blocks above the highest block
so that every call is final;
the cache is warmed with one call each. Both gateways run side by side with the same node; the uncached run comes
first, then the cached one. Prints requests per second of each, their ratio, and the hit ratio the gateway logged
during the cached run. Asserts nothing.

With --memory: what the cache costs a replica's memory, beside what zBI budgets for it: nginx's growth while two keys
at their concurrency cap hold hits of the largest real block (3.87 MB, verbosity 0) open, and its peak growth during
one fill and during `fillsAtOnce` concurrent fills of that block at verbosity 2 (fresh keys each).

    python3 -m uv run python benchmarks/history_cache.py [--latency-ms 40] [--seconds 8] [--connections 16]
    python3 -m uv run python benchmarks/history_cache.py --memory
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.debian import debian_tool
from tests.gateway_harness import KEYS, Gateway, running_gateway
from tests.history_node import start_history_node
from tests.test_gateway_payloads import post
from tests.test_history_cache_bounds import HOLDERS, held_request, nginx_rss_mib
from tests.test_history_cache_live import history_access
from tests.zcash_blocks import LARGEST, VECTORS, block
from zbi_infra.config.history_cache import HistoryCacheConfig
from zbi_infra.render.gateway_cache import FILL_COST_ANSWERS, MAX_CACHED_ANSWER_BYTES, TIP_SECONDS

HEIGHTS = sorted(VECTORS.values())


def wrk_script(directory: Path) -> Path:
    """Each connection cycles through the blocks' calls."""
    bodies = [json.dumps({"jsonrpc": "2.0", "method": "getblock", "params": [str(h), 1], "id": 1}) for h in HEIGHTS]
    auth = "Basic " + base64.b64encode(f"bench:{KEYS['bench']}".encode()).decode()
    lua = directory / "history.lua"
    lua.write_text(
        "local bodies = {" + ",".join(json.dumps(b) for b in bodies) + "}\n"
        "local i = 0\n"
        'wrk.method = "POST"\n'
        f'wrk.headers["Authorization"] = "{auth}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n  i = i % #bodies + 1\n"
        '  return wrk.format(nil, "/", nil, bodies[i])\nend\n'
    )
    return lua


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> tuple[float, int]:
    """(requests per second, non-2xx answers)."""
    out = subprocess.run(
        [debian_tool("wrk", ["wrk"]), "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, int(errors.group(1)) if errors else 0


def outcomes(log: Path, since: int) -> Counter[str]:
    lines = log.read_text().splitlines()[since:]
    return Counter(m.group(1) for line in lines if (m := re.search(r'"cache":"([a-z-]+)"', line)))


def peak_growth_mib(gateway: Gateway, bodies: list[bytes]) -> float:
    """nginx's peak memory above its level before, while `bodies` are posted at once (sampled every 10 ms)."""
    directory = gateway.config_dir
    base = nginx_rss_mib(directory)
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], nginx_rss_mib(directory))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    gateway_calls = [threading.Thread(target=post, args=(gateway, body)) for body in bodies]
    for call in gateway_calls:
        call.start()
    for call in gateway_calls:
        call.join()
    done.set()
    sampler.join()
    return peak[0] - base


def memory() -> None:
    fills = HistoryCacheConfig().fills_at_once
    largest = block(LARGEST)
    node = start_history_node(largest.height + 5_000)

    def call(version: str, reference: str, verbosity: int) -> bytes:
        body = {"jsonrpc": version, "method": "getblock", "params": [reference, verbosity], "id": 1}
        return json.dumps(body).encode()

    with tempfile.TemporaryDirectory() as temp:
        directory = Path(temp)
        try:
            with running_gateway(directory, node.address, None, history_cache=True, access_file=history_access(),
                                 cache_fills_at_once=fills) as gateway:  # fmt: skip
                time.sleep(TIP_SECONDS)
                held_body = call("2.0", largest.hash, 0)
                post(gateway, held_body)
                time.sleep(1)
                before = nginx_rss_mib(directory)
                held = [held_request(gateway, ("exchange", "bench")[i % 2], held_body) for i in range(HOLDERS)]
                time.sleep(1)
                holding = nginx_rss_mib(directory) - before
                for connection in held:
                    connection.close()
                one = peak_growth_mib(gateway, [call("1.0", str(largest.height), 2)])
                fresh = [call(v, ref, 2) for v in ("2.0", "1.0") for ref in (largest.hash, str(largest.height))]
                many = peak_growth_mib(gateway, [call("2.0", str(largest.height), 2), *fresh[: fills - 1]])
        finally:
            node.stop()
    budget = FILL_COST_ANSWERS * MAX_CACHED_ANSWER_BYTES / 2**20
    print(f"largest real block {LARGEST}: {len(largest.raw) * 2 / 1e6:.2f} MB of hex")
    print(f"{HOLDERS} hits held open (two keys at their cap, verbosity 0): nginx grew {holding:.1f} MiB")
    print(f"one fill (verbosity 2): peak growth {one:.1f} MiB; budgeted per fill {budget:.0f} MiB")
    print(f"{fills} fills at once (fillsAtOnce, verbosity 2): peak growth {many:.1f} MiB; "
          f"budgeted {fills * budget:.0f} MiB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-ms", type=float, default=40)
    parser.add_argument("--seconds", type=int, default=8)
    # Calls in flight at once: the node answers each after --latency-ms, so the uncached rate is at most
    # connections / latency (a node serving 16 calls at once).
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--memory", action="store_true", help="print the cache's memory figures instead")
    args = parser.parse_args()
    if args.memory:
        return memory()
    node = start_history_node(max(HEIGHTS) + 5_000)
    node.delay[0] = args.latency_ms / 1000
    with tempfile.TemporaryDirectory() as temp:
        directory = Path(temp)
        script = wrk_script(directory)
        try:
            with (
                running_gateway(directory / "plain", node.address, None, access_file=history_access()) as plain,
                running_gateway(
                    directory / "cache", node.address, None, history_cache=True, access_file=history_access()
                ) as gateway,
            ):
                time.sleep(TIP_SECONDS)
                for height in HEIGHTS:  # warm: one fill each
                    post(gateway, json.dumps({"jsonrpc": "2.0", "method": "getblock", "params": [str(height), 1],
                                              "id": 1}).encode())  # fmt: skip
                mark = len(gateway.log.read_text().splitlines())
                uncached, uncached_errors = run_wrk(plain.url, script, args.seconds, args.connections)
                cached, cached_errors = run_wrk(gateway.url, script, args.seconds, args.connections)
                seen = outcomes(gateway.log, mark)
                node_calls = sum(node.calls.values())
        finally:
            node.stop()
    served = seen["hit"] + seen["miss"]
    print(f"node latency {args.latency_ms:g} ms, {args.connections} connections, {args.seconds} s each, real blocks "
          f"at heights {HEIGHTS} (getblock verbosity 1)")  # fmt: skip
    print(f"{'path':<10} {'req/s':>10} {'non-2xx':>8}")
    print(f"{'uncached':<10} {uncached:>10.0f} {uncached_errors:>8}")
    print(f"{'cached':<10} {cached:>10.0f} {cached_errors:>8}")
    print(f"cached / uncached: {cached / uncached:.1f}x")
    print(f"hit ratio during the cached run: {seen['hit'] / served if served else 0:.4f} "
          f"({seen['hit']} hits, {seen['miss']} misses, {seen['pass']} passed to the node)")  # fmt: skip
    print(f"node calls in all: {node_calls}")


if __name__ == "__main__":
    main()
