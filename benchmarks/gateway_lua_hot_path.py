#!/usr/bin/env python3
"""Instructions per JSON-RPC `getblockcount` request: plain nginx proxying, the njs gateway zBI ships, and a SKETCH
of the gateway's hot path written for lua-nginx-module (LuaJIT), in the same run, with gateway_instructions.py's
client, upstream and callgrind method (its functions, imported). A measurement of a sketch, not a gateway zBI ships.

The sketch (benchmarks/gateway_lua_hot_path.lua) does per request what gateway.js does for one authenticated call:
the key from the Authorization header (basic auth or `Bearer`, base64 decoded by nginx's own decoder), its SHA-256
(OpenSSL's, through LuaJIT's FFI), the caller's entry read from the user table's file `key-<SHA-256>.json` as the
tests' harness writes it, the name and expiry checked, "<verdict> <rate key> <bucket> <user>" answered before the
body is read; then the body read, parsed (cjson), its method checked against the caller's allowlist and the
never-exposed lists, a member name given twice refused (the same quick test by counting ':' and the same scan
otherwise), the log's two variables set, and an internal redirect to the same proxy location. Not sketched:
batches and answers with withheld members (getinfo's splice), answered 501; gRPC calls' method and metadata check
(their verdict is "denied", nothing more); the history cache (the measured instance has none).

Its nginx.conf is the real gateway's as the harness renders it, with only the njs lines replaced (`js_set $zbi_who`
by `set_by_lua_block $zbi_who` in `location /`, before the same `if`; `js_content` by `content_by_lua_block`; the
`js_var`s by `set`; the splice location by a 501): the maps, limit_req and limit_conn zones, JSON access log, TLS,
refusal locations and proxy location are the gateway's own, so the difference measured is the scripting engine.
The key is checked in the rewrite phase, as the njs gateway checks it, not in the access phase: limit_req and
limit_conn (the preaccess phase) need the caller's rate key. Two variants: the entry read and parsed per request
(as njs must), and the entry kept per worker and its file `stat`ed per request (inode, size, mtime, ctime), so
that a new, rotated or revoked key still takes effect without a restart.

Before counting, the same calls (accepted, refused, a key revoked and rotated under a running nginx) are sent to the
njs gateway and to each sketch with the tests' JSON-RPC node as upstream, and their answers printed side by side.
Needs Debian's libnginx-mod-http-lua and lua-cjson (installed with apt-get when missing). Prints numbers; asserts
nothing.

    python3 uvw run python benchmarks/gateway_lua_hot_path.py [--requests 400] [--warmup 50] [--annotate N] [--floor]

`--warmup` matters to the Lua paths, not to njs's: LuaJIT compiles the handlers' hot code after some requests, so
fewer than about 300 requests of warm-up count some interpreted requests and the compiler's work (a worker serves
far more). `--floor` also counts the same nginx.conf with two trivial Lua handlers (a constant `$zbi_who`, the
redirect): what lua-nginx-module itself costs per request. `--annotate N` as in gateway_instructions.py.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchmarks.gateway_instructions as instructions
import benchmarks.gateway_load as gateway_load
import tests.gateway_harness as harness
from tests.debian import debian_tool
from tests.gateway_harness import KEYS, access, read_user_table, start_node, write_user_table
from zbi_infra.access_keys import new_key
from zbi_infra.config.access import NEVER_EXPOSED, NEVER_EXPOSED_PREFIXES, Z_CHAIN_QUERIES, light_wallet_service
from zbi_infra.config.zcashd_methods import gateway_refused
from zbi_infra.render.gateway import (
    ANONYMOUS_FILE,
    JS_MODULE,
    KEY_FILE_PREFIX,
    SPLICE_JS_MODULE,
    WITHHELD,
    ZCASHD_PATH,
    bucket_name,
    users_table,
)

LUA_TEMPLATE = Path(__file__).with_suffix(".lua")
# The module's name in the configuration directory (lua_package_path), as nginx.conf requires it.
SKETCH_MODULE = "gateway_sketch"
NGINX_MODULES = Path("/usr/lib/nginx/modules")
LUA_LOAD = (NGINX_MODULES / "ndk_http_module.so", NGINX_MODULES / "ngx_http_lua_module.so")
CJSON = Path("/usr/lib/x86_64-linux-gnu/lua/5.1/cjson.so")


def lua_set(names: Iterable[str]) -> str:
    """A set of names as a Lua table literal: name -> true."""
    return "{" + ", ".join(f"[{json.dumps(name)}] = true" for name in sorted(names)) + "}"


def sketch_module(config_dir: Path, *, cache_entries: bool) -> str:
    """The Lua sketch, its placeholders filled from the same lists gateway.js is rendered from."""
    substitutions = {
        "__TABLE_DIR__": str(config_dir),
        "__KEY_FILE_PREFIX__": KEY_FILE_PREFIX,
        "__ANONYMOUS_FILE__": ANONYMOUS_FILE,
        "__GRPC_SERVICE__": light_wallet_service()[0],
        "__ZCASHD_PATH__": ZCASHD_PATH,
        "__CACHE_ENTRIES__": "true" if cache_entries else "false",
        "__NEVER__": lua_set(NEVER_EXPOSED),
        "__NEVER_PREFIXES__": "{" + ", ".join(json.dumps(prefix) for prefix in NEVER_EXPOSED_PREFIXES) + "}",
        "__PREFIX_EXCEPTIONS__": lua_set(Z_CHAIN_QUERIES),
        "__ZCASHD_NEVER__": lua_set(gateway_refused(False)),
        "__WITHHELD__": lua_set(WITHHELD),
    }
    text = LUA_TEMPLATE.read_text()
    for placeholder, value in substitutions.items():
        text = text.replace(placeholder, value)
    return text


def swapped(text: str, old: str, new: str) -> str:
    """`text` with its one occurrence of `old` replaced: the rendered gateway must still hold what is replaced."""
    if text.count(old) != 1:
        raise RuntimeError(f"the rendered nginx.conf holds {text.count(old)} of {old!r}, not one")
    return text.replace(old, new)


def lua_nginx_conf(njs_conf: str, config_dir: Path) -> str:
    """The gateway's rendered nginx.conf with its njs lines replaced by the sketch's, and nothing else changed."""
    text = swapped(
        njs_conf,
        f"load_module {harness.JS_MODULE};\n",
        "".join(f"load_module {module};\n" for module in LUA_LOAD),
    )
    text = swapped(
        text,
        f"    js_path {config_dir};\n    js_import gateway from {JS_MODULE};\n",
        f'    lua_package_path "{config_dir}/?.lua;;";\n'
        f"    # Loaded once, before the workers fork; kept for their lives.\n"
        f'    init_by_lua_block {{ zbi_sketch = require "{SKETCH_MODULE}" }}\n',
    )
    text = swapped(text, "    js_set $zbi_who gateway.who;\n", "")
    text = swapped(text, '    js_var $zbi_methods "";\n    js_var $zbi_method "-";\n', "")
    text = swapped(text, '    js_var $zbi_splice "";\n', "")
    text = swapped(text, '    js_var $zbi_cache "-";\n', "")
    check = "            if ($zbi_verdict = unauthenticated) { rewrite ^ /_zbi_unauthenticated last; }\n"
    text = swapped(
        text,
        "            # The key is checked before the body is read: a caller without one costs no buffer.\n" + check,
        '            set $zbi_methods "";\n'
        '            set $zbi_method "-";\n'
        '            set $zbi_cache "-";\n'
        "            # The key is checked before the body is read: a caller without one costs no buffer.\n"
        "            set_by_lua_block $zbi_who { return zbi_sketch.who() }\n" + check,
    )
    content = "            content_by_lua_block { zbi_sketch.json_rpc() }\n"
    text = swapped(text, "            js_content gateway.jsonRpc;\n", content)
    text = swapped(
        text,
        f"            js_import splice from {SPLICE_JS_MODULE};\n            js_content splice.forwardAndSplice;\n",
        "            return 501;\n",
    )
    if "js_" in text.replace("json", ""):
        raise RuntimeError("an njs directive is left in the sketch's nginx.conf")
    return text


# `--floor`: what lua-nginx-module costs with nothing to do, the two handlers trivial (a constant `$zbi_who`, the
# redirect to the proxy, which reads the body itself), in the same nginx.conf.
TRIVIAL_MODULE = """-- Two trivial handlers: lua-nginx-module's own cost per request.
local who = "ok user:bench __BENCH_BUCKET__ bench"
return {who = function() return who end, json_rpc = function() return ngx.exec("@zbi_rpc") end}
"""


def sketch_preparer(*, cache_entries: bool | None) -> Callable[[Path], None]:
    """Turns a directory the harness rendered the njs gateway into into the Lua sketch's (`cache_entries` None: the
    two trivial handlers instead)."""

    def prepare(config_dir: Path) -> None:
        bench = access().user("bench")
        bucket = bucket_name(bench.rate_limit) if bench is not None else ""
        module = (
            TRIVIAL_MODULE.replace("__BENCH_BUCKET__", bucket)
            if cache_entries is None
            else sketch_module(config_dir, cache_entries=cache_entries)
        )
        (config_dir / f"{SKETCH_MODULE}.lua").write_text(module)
        conf = config_dir / "nginx.conf"
        conf.write_text(lua_nginx_conf(conf.read_text(), config_dir))

    return prepare


@contextmanager
def prepared_nginx(prepare: Callable[[Path], None] | None) -> Iterator[None]:
    """The harness's gateways, until the block ends, with `prepare` run on their directory before nginx starts."""
    original = harness.running_nginx

    @contextmanager
    def running(binary: str, directory: Path, port: int) -> Iterator[Path]:
        if prepare is not None:
            prepare(directory)
        with original(binary, directory, port) as log:
            yield log

    harness.running_nginx = running
    try:
        yield
    finally:
        harness.running_nginx = original


def answer(gateway: harness.Gateway, body: bytes, authorization: str | None) -> str:
    """A call's answer in short: HTTP status, then the JSON-RPC error code or the result."""
    connection = http.client.HTTPSConnection("127.0.0.1", gateway.port, timeout=10, context=gateway.context)
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    try:
        connection.request("POST", "/", body, headers)
        response = connection.getresponse()
        status, text = response.status, response.read()
    finally:
        connection.close()
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        return f"{status} (not JSON)"
    if isinstance(parsed, dict) and parsed.get("error"):
        return f"{status} error {parsed['error'].get('code')}"
    return f"{status} {json.dumps(parsed.get('result') if isinstance(parsed, dict) else parsed)}"


def basic(user: str, key: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()


CALL = b'{"jsonrpc":"1.0","method":"getblockcount","params":[],"id":1}'
EXCHANGE = basic("exchange", KEYS["exchange"])
CASES: list[tuple[str, bytes, str | None]] = [
    ("allowed call", CALL, EXCHANGE),
    ("allowed call, Bearer key", CALL, f"Bearer {KEYS['exchange']}"),
    ("unknown key", CALL, basic("exchange", new_key())),
    ("another user's name", CALL, basic("analytics", KEYS["exchange"])),
    ("expired key", CALL, basic("expired", KEYS["expired"])),
    ("empty key", CALL, basic("exchange", "")),
    ("no key (anonymous), method not theirs", CALL, None),
    ("not in the user's list", b'{"method":"getblock","params":["1"],"id":7}', basic("analytics", KEYS["analytics"])),
    ("never-exposed method", b'{"method":"stop","id":1}', EXCHANGE),
    ("a member given twice", b'{"method":"getblockcount","method":"stop","id":1}', EXCHANGE),
    ("a ':' in a string (scanned, allowed)", b'{"method":"getblockcount","id":"a:b"}', EXCHANGE),
    ("not JSON", b"{getblockcount", EXCHANGE),
    ("method not a string", b'{"method":{"toString":0},"id":1}', EXCHANGE),
]  # fmt: skip


def behaviour(directory: Path, prepare: Callable[[Path], None] | None) -> list[str]:
    """The answers to CASES, then to a key rotated and revoked under the running nginx (the old key, the new key, the
    old key again once restored), and whether the node received the allowed call's bytes as sent."""
    node = start_node()
    try:
        upstream = f"127.0.0.1:{node.server.server_port}"
        with prepared_nginx(prepare), harness.running_gateway(directory, upstream, node) as gateway:
            answers = [answer(gateway, body, authorization) for _, body, authorization in CASES]
            node.received.clear()
            answer(gateway, CALL, EXCHANGE)
            answers.append("as sent" if node.received == [CALL] else f"changed: {node.received!r}")
            original = read_user_table(gateway.config_dir)
            rotated = dict(KEYS, exchange=new_key())
            write_user_table(gateway.config_dir, users_table(access(rotated)))
            answers.append(answer(gateway, CALL, EXCHANGE))
            answers.append(answer(gateway, CALL, basic("exchange", rotated["exchange"])))
            write_user_table(gateway.config_dir, original)
            answers.append(answer(gateway, CALL, EXCHANGE))
            answers.append(answer(gateway, CALL, basic("exchange", rotated["exchange"])))
    finally:
        node.server.shutdown()
    return answers


BEHAVIOUR_ROWS = [
    *(label for label, _, _ in CASES),
    "the node received the call",
    "key rotated: the old key",
    "key rotated: the new key",
    "table restored: the old key",
    "table restored: the new key",
]

PATHS: dict[str, Callable[[Path], None] | None] = {
    "njs gateway": None,
    "Lua sketch, entry read per request": sketch_preparer(cache_entries=False),
    "Lua sketch, entry kept per worker (stat per request)": sketch_preparer(cache_entries=True),
}
FLOOR = "Lua, two trivial handlers (the floor)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--annotate", type=int, default=0, metavar="N")
    parser.add_argument("--floor", action="store_true", help="also count two trivial Lua handlers")
    args = parser.parse_args()
    counted_paths = dict(PATHS)
    if args.floor:
        counted_paths[FLOOR] = sketch_preparer(cache_entries=None)
    debian_tool("nginx", ["nginx-light", "libnginx-mod-http-lua", "lua-cjson"], needs=(*LUA_LOAD, CJSON))
    user = instructions.bench_authorization()
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        answers = {label: behaviour(root / f"check{i}", prepare) for i, (label, prepare) in enumerate(PATHS.items())}
        (root / "up").mkdir()
        conf, ports = gateway_load.fixed_upstreams(root / "up")
        results: dict[str, float] = {}
        tops: dict[str, str] = {}
        with gateway_load.nginx_running(root / "up", conf):
            label = "plain nginx proxying"
            results[label] = instructions.plain_counted(root, ports, user, args.warmup, args.requests)
            tops[label] = instructions.costliest(root / "plain.out", args.annotate) if args.annotate else ""
            for i, (label, prepare) in enumerate(counted_paths.items()):
                out = root / f"path{i}.out"
                results[label] = instructions.gateway_counted(
                    root / f"gw{i}", out, ports, user, args.warmup, args.requests, prepare
                )
                tops[label] = instructions.costliest(out, args.annotate) if args.annotate else ""
    print("answers (HTTP status, then the JSON-RPC error code or the result), by path:")
    for row, label in enumerate(BEHAVIOUR_ROWS):
        seen = [answers[path][row] for path in PATHS]
        same = "same" if len(set(seen)) == 1 else "DIFFERENT"
        print(f"  {label}: {' | '.join(seen)} ({same})")
    print(f"instructions per JSON-RPC getblockcount request (callgrind, {args.requests} requests after "
          f"{args.warmup}, one kept-alive TLS connection, one nginx process):")  # fmt: skip
    plain = results["plain nginx proxying"]
    for label, value in results.items():
        ratio = "" if label == "plain nginx proxying" else f"  plain / this: {plain / value:.2f}"
        print(f"  {label}: {value:,.0f}{ratio}")
    if args.annotate:
        for label, top in tops.items():
            print(f"== {label}, costliest {args.annotate} (inclusive) ==\n{top}")


if __name__ == "__main__":
    main()
