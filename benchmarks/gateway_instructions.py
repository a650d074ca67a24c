#!/usr/bin/env python3
"""Instructions per JSON-RPC `getblockcount` request, the gateway beside plain nginx proxying, counted by valgrind's
callgrind: unlike requests per CPU-second, a count that the other jobs of a shared machine do not move.

Each nginx runs as one process (`master_process off`) under callgrind, against the same fixed-body upstream as
benchmarks/gateway_load.py; a client sends `--warmup` requests on one kept-alive TLS connection, the counters are
zeroed, `--requests` more are sent, and the counters dumped: their total divided by the requests is the figure.
The plain proxy's configuration is gateway_load.py's. Prints numbers; asserts nothing.

    python3 uvw run python benchmarks/gateway_instructions.py [--requests 400] [--warmup 300] [--annotate N]
        [--history-cache] [--engine njs|lua ...]

Each engine's gateway (both unless `--engine` names one) is counted after the plain proxy, in the same run.
`--warmup` matters to the Lua engine: LuaJIT compiles hot code after some requests, so fewer than about 300 count
interpreted requests and the compiler's work (a worker serves far more); njs compiles nothing across requests.
`--annotate N` prints each path's N costliest functions (inclusive of what they call), from callgrind_annotate.
`--history-cache`: the gateway of an instance with the history cache (getblockcount is not cached: the figure is
the same call's; njs runs gateway_cache.js's top level in every request, Lua loaded it once).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import re
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchmarks.gateway_load as gateway_load
import tests.gateway_harness as harness
from tests.gateway_harness import KEYS, free_port, tls_files
from zbi_infra.render.gateway_engines import ENGINES, Engine

CALL = json.dumps({"jsonrpc": "1.0", "method": "getblockcount", "params": [], "id": 1}).encode()


@contextmanager
def under_callgrind(binary: str, directory: Path, port: int, out: Path) -> Iterator[int]:
    """`binary` on `directory/nginx.conf` under callgrind, one process, once it accepts on `port`; yields its pid."""
    log = (directory / "callgrind.log").open("w")
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "-e", "stderr",
         "-p", str(directory), "-c", str(directory / "nginx.conf"), "-g", "daemon off; master_process off;"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                probe = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=unverified())
                probe.request("GET", "/healthz")
                probe.getresponse().read()
                probe.close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start under callgrind: {directory / 'callgrind.log'}") from None
                time.sleep(0.5)
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def send(port: int, authorization: str, count: int) -> None:
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=60, context=unverified())
    headers = {"Authorization": authorization, "Content-Type": "application/json"}
    for _ in range(count):
        connection.request("POST", "/", CALL, headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200 or b'"result":3000000' not in body:
            raise RuntimeError(f"unexpected answer {response.status}: {body[:200]!r}")
    connection.close()


def counted(pid: int, port: int, authorization: str, warmup: int, requests: int, out: Path) -> float:
    """Instructions per request over `requests` requests after `warmup`; leaves the dump in `out`'s directory."""
    send(port, authorization, warmup)
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True, timeout=120)
    send(port, authorization, requests)
    for old in out.parent.glob(f"{out.name}.*"):
        old.unlink()
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True, timeout=120)
    dump = max(out.parent.glob(f"{out.name}.*"), key=lambda p: p.stat().st_mtime)
    totals = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(), flags=re.MULTILINE)
    if totals is None:
        raise RuntimeError(f"no totals in {dump}")
    return int(totals.group(1)) / requests


def costliest(out: Path, count: int) -> str:
    dump = max(out.parent.glob(f"{out.name}.*"), key=lambda p: p.stat().st_mtime)
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", str(dump)], capture_output=True, text=True, timeout=120
    ).stdout
    lines = [line for line in text.splitlines() if re.match(r"^\s*[\d,]+ \(", line)]
    return "\n".join(lines[:count])


def bench_authorization() -> str:
    """The benchmark user's Basic credentials (a rate limit no run reaches), as every path here is sent them."""
    return "Basic " + base64.b64encode(f"bench:{KEYS['bench']}".encode()).decode()


def plain_counted(root: Path, ports: dict[str, int], authorization: str, warmup: int, requests: int) -> float:
    """Plain nginx proxying (gateway_load.py's configuration) to the `small` upstream, counted; its dump in
    `root / "plain.out.*"`."""
    (root / "plain").mkdir()
    tls_files(root / "plain")
    plain_port = free_port()
    plain_conf = gateway_load.plain_proxy(root / "plain", ports, "small", plain_port)
    (root / "plain" / "nginx.conf").write_text(
        f"load_module {harness.JS_MODULE};\npid {root}/plain/nginx.pid;\nerror_log stderr error;\n"
        f"events {{ worker_connections 1024; }}\nhttp {{\n access_log off;\n"
        f" client_body_temp_path {root}/plain/body;\n proxy_temp_path {root}/plain/proxy;\n{plain_conf}\n}}\n"
    )
    out = root / "plain.out"
    with under_callgrind(harness.nginx(), root / "plain", plain_port, out) as pid:
        return counted(pid, plain_port, authorization, warmup, requests, out)


def gateway_counted(
    config_dir: Path,
    out: Path,
    ports: dict[str, int],
    authorization: str,
    warmup: int,
    requests: int,
    *,
    history_cache: bool = False,
    engine: Engine = "njs",
) -> float:
    """The gateway as the tests' harness renders it (user table, TLS, nginx.conf, modules) into `config_dir`, to the
    `small` upstream, counted under callgrind (its dump in `out.*`), with `engine`; `history_cache` renders an
    instance's gateway with the history cache."""

    @contextmanager
    def gateway_nginx(binary: str, directory: Path, port: int) -> Iterator[Path]:
        with under_callgrind(binary, directory, port, out):
            yield directory / "callgrind.log"

    # The harness renders and starts the gateway; here it starts under callgrind instead.
    original, harness.running_nginx = harness.running_nginx, gateway_nginx
    try:
        with harness.running_gateway(
            config_dir,
            f"127.0.0.1:{ports['small']}",
            None,
            max_body_bytes=64 * 1024,
            history_cache=history_cache,
            engine=engine,
        ) as gw:
            pid = int((gw.config_dir / "nginx.pid").read_text())
            return counted(pid, gw.port, authorization, warmup, requests, out)
    finally:
        harness.running_nginx = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--annotate", type=int, default=0, metavar="N")
    parser.add_argument("--history-cache", action="store_true", help="the gateway of an instance with the cache")
    parser.add_argument("--engine", choices=ENGINES, action="append", help="one engine (repeatable; default: both)")
    args = parser.parse_args()
    engines = tuple(args.engine) if args.engine else ENGINES
    user = bench_authorization()
    plain = "plain nginx proxying"
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        (root / "up").mkdir()
        conf, ports = gateway_load.fixed_upstreams(root / "up")
        results, tops = {}, {}
        with gateway_load.nginx_running(root / "up", conf):
            results[plain] = plain_counted(root, ports, user, args.warmup, args.requests)
            tops[plain] = costliest(root / "plain.out", args.annotate) if args.annotate else ""
            for engine in engines:
                out = root / f"gateway-{engine}.out"
                label = f"{engine} gateway"
                results[label] = gateway_counted(
                    root / f"gw-{engine}", out, ports, user, args.warmup, args.requests,
                    history_cache=args.history_cache, engine=engine,
                )  # fmt: skip
                tops[label] = costliest(out, args.annotate) if args.annotate else ""
    cache = ", the gateway with the history cache" if args.history_cache else ""
    print(f"instructions per JSON-RPC getblockcount request (callgrind, {args.requests} requests after "
          f"{args.warmup}, one kept-alive TLS connection, one nginx process{cache}):")  # fmt: skip
    for label, value in results.items():
        share = "" if label == plain else f"  plain / this: {results[plain] / value:.2f}"
        print(f"  {label}: {value:,.0f}{share}")
    if args.annotate:
        for label, top in tops.items():
            print(f"== {label}, costliest {args.annotate} (inclusive) ==\n{top}")


if __name__ == "__main__":
    main()
