"""The gateway measured with load generators written for it, against upstreams that cannot be the bottleneck:
Debian's `wrk` (JSON-RPC over HTTP/1.1 and TLS) and `h2load` (gRPC over HTTP/2 and TLS), each run against the
rendered gateway and against plain nginx proxying to the same upstream, in the same run. The upstreams are nginx
answering a fixed body (a `getblockcount` answer, a real 3.9 MB block, a batch answer, a gRPC `BlockID`).

Figures: requests per second, requests per CPU-second of nginx (master and workers, from /proc: the fairer figure
on a shared machine), their ratio to plain proxying, and the p99 latency each path adds; the memory nginx holds while
streaming the largest real answer; and its memory under the slow-body attack, with the pod's limit beside it.
Called by benchmarks/gateway.py, or alone; prints numbers, asserts nothing.

    python3 uvw run python benchmarks/gateway_load.py [--seconds 8] [--requests 8000] [--throughput-only]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.debian import debian_tool
from tests.gateway_harness import (
    JS_MODULE,
    KEYS,
    Gateway,
    free_port,
    nginx,
    nginx_cpu_seconds,
    running_gateway,
    tls_files,
)
from tests.nginx_builds import takes_http2_on
from tests.zcash_blocks import LARGEST, block
from zbi_infra.config.instance import GATEWAY_MAX_CALLS_PER_CALLER, GatewayConfig
from zbi_infra.render.gateway import (
    DEFAULT_MEMORY_LIMIT_MIB,
    anonymous_requests_cap,
    body_buffer_bytes,
    spliced_batches_cap,
)
from zbi_infra.render.gateway_engines import ENGINES, Engine

SMALL = b'{"result":3000000,"error":null,"id":1}'
BATCH_CALLS = 10
TIP = 3_000_000
SERVICE = "cash.z.wallet.sdk.rpc.CompactTxStreamer"


def varint(value: int) -> bytes:
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


@contextmanager
def nginx_running(directory: Path, conf: str) -> Iterator[int]:
    """nginx with `conf` (its http block's content) until the block ends; yields the master's pid."""
    directory.mkdir(parents=True, exist_ok=True)
    user = "user root;" if os.geteuid() == 0 else ""
    (directory / "nginx.conf").write_text(
        f"load_module {JS_MODULE};\n{user}\nworker_processes 2;\npid {directory}/nginx.pid;\n"
        "error_log stderr error;\n"
        f"events {{ worker_connections 8192; }}\nhttp {{\n access_log off;\n client_body_temp_path {directory}/body;\n"
        f" proxy_temp_path {directory}/proxy;\n{conf}\n}}\n"
    )
    process = subprocess.Popen(
        [nginx(), "-e", "stderr", "-p", str(directory), "-c", str(directory / "nginx.conf"), "-g", "daemon off;"]
    )
    try:
        deadline = time.monotonic() + 10
        while not (directory / "nginx.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        yield int((directory / "nginx.pid").read_text())
    finally:
        process.terminate()
        process.wait(timeout=10)


def master_pid(directory: Path) -> int:
    """nginx's master pid from its pid file, which it creates and then writes: read until written (10 s at most)."""
    deadline = time.monotonic() + 10
    while not (text := (directory / "nginx.pid").read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return int(text)


def fixed_upstreams(directory: Path) -> tuple[str, dict[str, int]]:
    """An nginx config answering fixed bodies: small JSON-RPC, the largest real block (verbosity 2), a batch answer,
    and gRPC (a BlockID, trailers with grpc-status 0). POSTs reach static files through error_page 405 (nginx
    serves files to GETs only, and turns the redirected request into a GET)."""
    largest = block(LARGEST)
    (directory / "block.json").write_bytes(json.dumps({"result": largest.verbose(2), "error": None, "id": 1}).encode())
    answers = [{"result": TIP, "error": None, "id": i} for i in range(1, BATCH_CALLS + 1)]
    (directory / "batch.json").write_bytes(json.dumps(answers).encode())
    (directory / "reply.bin").write_bytes(grpc_frame(b"\x08" + varint(TIP)))
    ports = {name: free_port() for name in ("small", "big", "batch", "grpc")}

    def static(name: str, port: int, extra: str = "default_type application/json;", http2: bool = False) -> str:
        listen = listen_http2(f"127.0.0.1:{port}", "") if http2 else f"listen 127.0.0.1:{port};"
        # Over HTTP/2 the whole body is read before the answer (the mirror reads it), as a gRPC server reads a unary
        # call: nginx 1.25+ answering first then resets the stream's unread body, and the proxy in front, finding
        # that frame on a kept-alive connection it had reused, fails the next call (a few per 8,000, plain too).
        read_first = " mirror /read-body; mirror_request_body on;" if http2 else ""
        return (
            f" server {{ {listen} root {directory};\n"
            f"  location / {{ {extra}{read_first} error_page 405 =200 /{name}; try_files /{name} =404; }}\n"
            + ("  location = /read-body { internal; return 204; }\n" if http2 else "")
            + f"  location = /{name} {{ {extra} }} }}\n"
        )

    conf = (
        # Upstream connections stay open for the whole run (nginx closes them after 1,000 requests by default).
        " keepalive_requests 1000000;\n"
        f" server {{ listen 127.0.0.1:{ports['small']}; location / {{ default_type application/json;"
        f" return 200 '{SMALL.decode()}'; }} }}\n"
        + static("block.json", ports["big"])
        + static("batch.json", ports["batch"])
        + static("reply.bin", ports["grpc"], "default_type application/grpc; add_trailer grpc-status 0;", http2=True)
    )
    return conf, ports


def listen_http2(address: str, parameters: str) -> str:
    """A listen directive with HTTP/2 as the nginx under test writes it (the `http2` directive from 1.25.1)."""
    if takes_http2_on(nginx()):
        return f"listen {address}{parameters}; http2 on;"
    return f"listen {address}{parameters} http2;"


def plain_proxy(directory: Path, ports: dict[str, int], upstream: str, port: int) -> str:
    certificate, key = directory / "tls.crt", directory / "tls.key"
    return (
        f" upstream rpc_{upstream} {{ server 127.0.0.1:{ports[upstream]}; keepalive 32; }}\n"
        f" upstream wallet_{upstream} {{ server 127.0.0.1:{ports['grpc']}; keepalive 32; }}\n"
        f" server {{ {listen_http2(f'127.0.0.1:{port}', ' ssl')} ssl_certificate {certificate};"
        f" ssl_certificate_key {key};\n"
        f"  location / {{ proxy_pass http://rpc_{upstream}; proxy_http_version 1.1;"
        " proxy_set_header Connection ''; }\n"
        f"  location /{SERVICE}/ {{ grpc_pass grpc://wallet_{upstream}; }} }}\n"
    )


def rss_mib(master: int) -> float:
    total = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(entry.name) == master or int(stat[1]) == master:
                    status = (entry / "status").read_text()
                    total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
            except (OSError, AttributeError):
                continue
    return total / 1024


def milliseconds(text: str) -> float:
    """wrk's latency text (its units: us, ms, s, m, h) in milliseconds."""
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}[unit]


def wrk(
    url: str,
    body: bytes,
    authorization: str,
    seconds: int,
    connections: int,
    directory: Path,
    *,
    refusals_allowed: bool = False,
) -> tuple[float, float]:
    """(requests/s, p99 ms) of wrk POSTing `body`; non-2xx answers are reported as a failure, or, with
    `refusals_allowed` (a capped path), counted and printed."""
    script = directory / "post.lua"
    script.write_text(
        f"wrk.method = 'POST'\nwrk.body = {json.dumps(body.decode())}\n"
        f"wrk.headers['Content-Type'] = 'application/json'\nwrk.headers['Authorization'] = '{authorization}'\n"
    )
    binary = debian_tool("wrk", ["wrk"])
    out = subprocess.run(
        [binary, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if refused and not refusals_allowed:
        raise RuntimeError(f"wrk saw errors: {out}")
    if refused:
        print(f"  ({refused.group(1)} answers refused on {url}: a cap's slot not yet released by the last request)")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # The distribution's own line: "99.99%" also ends a column of the thread statistics above it.
    p99 = milliseconds(re.search(r"^\s+99%\s+(\S+)", out, flags=re.MULTILINE).group(1))  # type: ignore[union-attr]
    return rate, p99


def h2load(url: str, authorization: str | None, requests: int, directory: Path) -> tuple[float, float]:
    """(requests/s, p99 ms) of h2load making gRPC unary calls (HTTP/2 POSTs of a framed ChainSpec)."""
    (directory / "call.bin").write_bytes(grpc_frame(b""))
    log = directory / "h2load.log"
    binary = debian_tool("h2load", ["nghttp2-client"])
    headers = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    if authorization:
        headers += ["-H", f"authorization: {authorization}"]
    out = subprocess.run(
        [binary, f"-n{requests}", "-c8", "-m4", "-t1", "-d", str(directory / "call.bin"), *headers,
         "--log-file", str(log), url],
        capture_output=True, text=True, timeout=300,
    ).stdout  # fmt: skip
    ok = int(re.search(r"status codes: (\d+) 2xx", out).group(1))  # type: ignore[union-attr]
    if ok < requests * 0.99:
        raise RuntimeError(f"h2load saw errors: {out}")
    if ok < requests:
        print(f"  (h2load: {requests - ok} of {requests} calls not 2xx on {url})")
    rate = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    latencies = sorted(int(line.split()[2]) for line in log.read_text().splitlines() if line.strip())
    return rate, latencies[int(len(latencies) * 0.99)] / 1000


def measured(master: int, run) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(requests/s, requests per nginx CPU-second, p99 ms) of one run."""
    before = nginx_cpu_seconds(master)
    start = time.monotonic()
    rate, p99 = run()
    elapsed = time.monotonic() - start
    cpu = nginx_cpu_seconds(master) - before
    return rate, rate * elapsed / cpu if cpu else float("nan"), p99


def slow_body_attack(
    port: int,
    context: ssl.SSLContext,
    sources: int,
    per_source: int,
    body: int,
    auth: str | None,
    fill: bool = False,
) -> list[ssl.SSLSocket]:
    """Connections each announcing a `body`-byte body and sending one byte, from `sources` loopback addresses;
    `fill`: a chunked body instead, framed (padded chunk sizes) to fill nginx's whole body buffer, then stalled."""
    held = []
    header = f"Authorization: {auth}\r\n" if auth else ""
    chunk = b"0" * 200 + b"64\r\n" + b"[" * 100 + b"\r\n"
    filled = chunk * (body_buffer_bytes(body) // len(chunk) - 1)
    for s in range(sources):
        for _ in range(per_source):
            try:
                raw = socket.create_connection(
                    ("127.0.0.1", port), timeout=5, source_address=(f"127.0.{1 + s // 250}.{1 + s % 250}", 0)
                )
                tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
                if fill:
                    tls.sendall(f"POST / HTTP/1.1\r\nHost: x\r\n{header}Transfer-Encoding: chunked\r\n\r\n".encode())
                    tls.sendall(filled)
                else:
                    tls.sendall(f"POST / HTTP/1.1\r\nHost: x\r\n{header}Content-Length: {body}\r\n\r\n{{".encode())
                held.append(tls)
            except OSError:
                break
    return held


COLUMNS = "path | req/s gateway, plain, ratio | req per nginx CPU-s gateway, plain, ratio | p99 gateway, plain, added"


def row(label: str, gateway: tuple[float, float, float], plain: tuple[float, float, float]) -> str:
    return (
        f"{label} | {gateway[0]:.0f}, {plain[0]:.0f}, {gateway[0] / plain[0]:.2f} | {gateway[1]:.0f}, {plain[1]:.0f}, "
        f"{gateway[1] / plain[1]:.2f} | {gateway[2]:.2f}, {plain[2]:.2f}, {gateway[2] - plain[2]:+.2f} ms"
    )


def report(
    seconds: int = 8, requests: int = 8_000, throughput_only: bool = False, engines: tuple[Engine, ...] = ENGINES
) -> None:
    """`requests` gRPC calls on 8 connections: nginx ends an HTTP/2 connection after 1,000 (keepalive_requests).
    `throughput_only`: JSON-RPC `getblockcount` and gRPC only (no batches, large answers, memory or attacks).
    Each engine's gateways in turn, every row with plain proxying measured again beside it."""
    user = "Basic " + base64.b64encode(f"bench:{KEYS['bench']}".encode()).decode()
    max_body = GatewayConfig().max_body_kib * 1024
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        (root / "up").mkdir()
        conf, ports = fixed_upstreams(root / "up")
        (root / "plain").mkdir()
        tls_files(root / "plain")
        plain_port = {name: free_port() for name in ("small", "big", "batch")}
        plain_conf = "".join(plain_proxy(root / "plain", ports, name, port) for name, port in plain_port.items())
        grpc_upstream = f"127.0.0.1:{ports['grpc']}"
        print(f"machine: {os.cpu_count()} CPUs shared with other jobs (figures are noisy); TLS on both paths")
        print(COLUMNS)
        with nginx_running(root / "up", conf), nginx_running(root / "plain", plain_conf) as plain_master:
            for engine in engines:
                with (
                    running_gateway(root / f"gw-{engine}", f"127.0.0.1:{ports['small']}", None,
                                    grpc_upstream=grpc_upstream, max_body_bytes=max_body, engine=engine) as small,
                    running_gateway(root / f"gw-big-{engine}", f"127.0.0.1:{ports['big']}", None,
                                    max_body_bytes=max_body, engine=engine) as big,
                    running_gateway(root / f"gw-batch-{engine}", f"127.0.0.1:{ports['batch']}", None,
                                    max_body_bytes=max_body, engine=engine) as batch,
                ):  # fmt: skip
                    gateways = {"small": small, "big": big, "batch": batch}
                    plain = (plain_master, plain_port)
                    engine_rows(engine, gateways, plain, root, seconds, requests, throughput_only)
    if throughput_only:
        return
    with tempfile.TemporaryDirectory() as temporary:
        for engine in engines:
            attacks(Path(temporary), user, max_body, engine)


def engine_rows(
    engine: Engine,
    gateways: dict[str, Gateway],
    plain: tuple[int, dict[str, int]],
    root: Path,
    seconds: int,
    requests: int,
    throughput_only: bool,
) -> None:
    """One engine's rows: each case on its gateway, then on plain nginx (`plain`: its master's pid and its ports);
    then the memory of the largest answer."""
    plain_master, plain_port = plain
    user = "Basic " + base64.b64encode(f"bench:{KEYS['bench']}".encode()).decode()
    bearer = f"Bearer {KEYS['bench']}"
    masters = {name: master_pid(g.config_dir) for name, g in gateways.items()}
    call = json.dumps({"jsonrpc": "1.0", "method": "getblockcount", "params": [], "id": 1}).encode()
    getblock = json.dumps({"method": "getblock", "params": [block(LARGEST).hash, 2], "id": 1}).encode()
    calls = [{"method": "getblockcount", "id": i} for i in range(1, BATCH_CALLS + 1)]
    spliced = json.dumps([*calls, {"method": "stop", "id": 99}]).encode()
    splice_cap = spliced_batches_cap(DEFAULT_MEMORY_LIMIT_MIB)
    cases = [
        ("JSON-RPC getblockcount (wrk, 32 connections)", "small", call, 32),
        ("JSON-RPC batch of 10, all allowed (streamed)", "batch", json.dumps(calls).encode(), 32),
        # Spliced batches are admitted only so many at once per replica (429 beyond): that many connections.
        (f"JSON-RPC batch of 10 + 1 refused (spliced, {splice_cap} connections)", "batch", spliced, splice_cap),
        ("JSON-RPC getblock 3.9 MB (real block 141042, 4 connections)", "big", getblock, 4),
    ]
    if throughput_only:
        cases = cases[:1]
    for label, name, body, connections in cases:
        url = f"https://127.0.0.1:{plain_port[name]}/"
        # The gateway's caps (32 calls in progress per user, 4 spliced batches) race a connection's next request
        # against the release of its last one's slot: its rare refusals are counted, not fatal.
        gateway_run = partial(wrk, gateways[name].url, body, user, seconds, connections, root, refusals_allowed=True)
        plain_run = partial(wrk, url, body, user, seconds, connections, root)
        print(row(f"{engine}: {label}", measured(masters[name], gateway_run), measured(plain_master, plain_run)))
    path = f"/{SERVICE}/GetLatestBlock"
    gateway_run = partial(h2load, f"https://127.0.0.1:{gateways['small'].port}{path}", bearer, requests, root)
    plain_run = partial(h2load, f"https://127.0.0.1:{plain_port['small']}{path}", None, requests, root)
    label = f"{engine}: gRPC GetLatestBlock (h2load, 8 connections x 4 streams)"
    print(row(label, measured(masters["small"], gateway_run), measured(plain_master, plain_run)))
    if not throughput_only:
        memory(engine, gateways["big"], masters["big"], getblock, user, root)


def peak_rss_during(master: int, run) -> float:  # type: ignore[no-untyped-def]
    peak = [rss_mib(master)]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak.append(rss_mib(master))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run()
    finally:
        done.set()
        sampler.join()
    return max(peak)


def memory(engine: Engine, big: Gateway, big_master: int, getblock: bytes, user: str, root: Path) -> None:
    idle = rss_mib(big_master)
    streamed = peak_rss_during(big_master, lambda: wrk(big.url, getblock, user, 5, 8, root))
    largest = len(json.dumps({"result": block(LARGEST).verbose(2), "error": None, "id": 1}))
    print(f"{engine}: largest answer passed: {largest:,} bytes (getblock verbosity 2 of the ~1.9 MB Testnet block "
          "141042); "
          f"gateway RSS idle {idle:.1f} MiB, peak while streaming it to 8 clients {streamed:.1f} MiB")  # fmt: skip
    mixed = json.dumps(
        [{"method": "stop", "id": 0}, {"method": "getblock", "params": [block(LARGEST).hash, 2], "id": 1}]
    ).encode()
    spliced_peak = peak_rss_during(big_master, lambda: wrk(big.url, mixed, user, 5, 8, root, refusals_allowed=True))
    what = f"{engine}: the same answer spliced (a batch with a refused call, buffered in the engine)"
    print(f"{what}, 8 clients: peak {spliced_peak:.1f} MiB")


def attacks(root: Path, user: str, max_body: int, engine: Engine) -> None:
    """The slow-body attack (a body announced, one byte sent) on a fresh gateway each time: freed memory is not
    always returned to the system, so one attack's figure would otherwise carry the last one's."""
    limit = GatewayConfig().resources.memory_limit
    upstream = f"127.0.0.1:{free_port()}"  # never reached: no body is ever complete
    anonymous_cap = anonymous_requests_cap(max_body)
    for label, sources, per_source, auth, fill in (
        ("no key, 30 addresses x 100", 30, 100, "Basic " + base64.b64encode(b"x:zbik_wrong").decode(), False),
        (f"anonymous, 100 addresses x 8 (cap {anonymous_cap} in all)", 100, 8, None, False),
        (f"anonymous, chunked bodies filling the buffer, 100 addresses x 8 (cap {anonymous_cap})", 100, 8, None, True),
        (f"one key, 10 addresses x 8 (cap {GATEWAY_MAX_CALLS_PER_CALLER} per user)", 10, 8, user, False),
        (f"one key, chunked bodies filling the buffer, 10 x 8 (cap {GATEWAY_MAX_CALLS_PER_CALLER})", 10, 8, user, True),
        ("anonymous, 1 address x 1,500 (idle TLS connections)", 1, 1500, None, False),
    ):
        with running_gateway(
            root / f"attack-{engine}-{sources}-{per_source}", upstream, None, max_body_bytes=max_body, engine=engine
        ) as target:
            master = master_pid(target.config_dir)
            before = rss_mib(master)
            held = slow_body_attack(target.port, target.context, sources, per_source, max_body, auth, fill)
            time.sleep(1.0)
            during = rss_mib(master)
            for connection in held:
                connection.close()
        sent = "filling nginx's buffer" if fill else "announced"
        print(f"{engine}: slow-body attack, {label}, {len(held)} connections held, bodies of {max_body // 1024} KiB "
              f"{sent}: "
              f"RSS {before:.1f} -> {during:.1f} MiB (pod limit {limit})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8, help="each wrk run")
    parser.add_argument("--requests", type=int, default=8_000, help="gRPC calls of the h2load run")
    parser.add_argument("--throughput-only", action="store_true", help="getblockcount and gRPC rows only")
    parser.add_argument("--engine", choices=ENGINES, action="append", help="one engine (repeatable; default: both)")
    args = parser.parse_args()
    engines = tuple(args.engine) if args.engine else ENGINES
    report(seconds=args.seconds, requests=args.requests, throughput_only=args.throughput_only, engines=engines)


if __name__ == "__main__":
    main()
