"""The gateway's two scripting engines: the njs module (gateway.js and its modules, nginx's own njs) and the Lua
engine (zbi_gateway.lua and its modules, lua-nginx-module: OpenResty in the pod). Both check the same keys, lists
and bodies and give the same answers (the live tests run each); they differ in what a request costs. njs clones a
VM per request and keeps nothing across requests, so every request reads its user table entry and runs the
module's top level again; LuaJIT keeps the modules and the entries a worker read, checked with one statx(2) per
request (benchmarks/gateway_load.py measures both against plain proxying). The history cache has a module in each
(gateway_cache.js, zbi_cache.lua).

This module says, per engine, what nginx.conf loads and where the handlers sit; gateway_nginx.py renders the rest,
the same for both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import get_args

from zbi_infra.config.access import (
    NEVER_EXPOSED,
    NEVER_EXPOSED_PREFIXES,
    Z_CHAIN_QUERIES,
    RateLimit,
    light_wallet_service,
)
from zbi_infra.config.history import FINAL_DEPTH
from zbi_infra.config.instance import GatewayEngine as Engine
from zbi_infra.config.zcashd_methods import gateway_refused
from zbi_infra.render.gateway import (
    ANONYMOUS_FILE,
    DEFAULT_MAX_BATCH,
    GRPC_BLANKED_HEADERS,
    GRPC_FORWARDED_HEADERS,
    JS_MODULE,
    KEY_FILE_PREFIX,
    MAX_SPLICED_ANSWER_BYTES,
    RELAY_PORT,
    SPLICE_JS_MODULE,
    WITHHELD,
    ZCASHD_PATH,
    GatewayPaths,
)
from zbi_infra.render.gateway_cache import FILL_PORT, MAX_CACHED_ANSWER_BYTES, TIP_MAX_AGE_SECONDS, GatewayCache
from zbi_infra.render.gateway_rate import lua_configuration, lua_dictionary, meter_location

# The engines are the configuration's (gateway.engine), named once there.
ENGINES: tuple[Engine, ...] = get_args(Engine)

# The Lua engine's modules, files of the ConfigMap as the njs ones are (required by these names).
LUA_GATEWAY_MODULE = "zbi_gateway.lua"
LUA_SPLICE_MODULE = "zbi_splice.lua"
LUA_JSON_TEXT_MODULE = "zbi_json_text.lua"
LUA_CACHE_MODULE = "zbi_cache.lua"
LUA_RATE_MODULE = "zbi_rate.lua"
LUA_MODULES = (LUA_GATEWAY_MODULE, LUA_SPLICE_MODULE, LUA_JSON_TEXT_MODULE, LUA_CACHE_MODULE, LUA_RATE_MODULE)


@dataclass(frozen=True)
class EngineDirectives:
    """What one engine adds to nginx.conf: `main` in the main context (modules to load), `http` in the http block
    (the modules, $zbi_who where njs computes it, the variables the handlers set), `server` first in the public
    server (the Lua engine's variables, with their defaults), `who` first in each location that checks a key (the
    Lua engine sets $zbi_verdict and the variables derived from it there), `who_charged` instead in the locations
    that forward calls (the Lua engine also charges the request to the caller's rate bucket there, and refuses it
    with 429 without room), `content` the JSON-RPC handler, and `subrequest_locations` the locations njs reaches by
    internal redirect or subrequest: the spliced path's and the rate meter's (Lua splices in the same handler and
    counts a batch's calls in its own buckets). `nginx_rate_buckets`: whether nginx counts the rate buckets (limit_req
    zones, njs) or the engine does (zbi_rate.lua)."""

    main: str
    http: str
    server: str
    who: str
    who_charged: str
    content: str
    subrequest_locations: str
    nginx_rate_buckets: bool


def njs_directives(paths: GatewayPaths, js_module_path: str) -> EngineDirectives:
    return EngineDirectives(
        main=f"load_module {js_module_path};\n",
        http=(
            f"    js_path {paths.config_dir};\n"
            f"    js_import gateway from {JS_MODULE};\n"
            "    # The one njs call before the body: who the caller is and what they may do, split by the maps below.\n"
            "    js_set $zbi_who gateway.who;\n"
            '    js_var $zbi_methods "";\n'
            '    js_var $zbi_method "-";\n'
            "    # The checked calls gateway.js hands to the spliced path (gateway_splice.js), as JSON.\n"
            '    js_var $zbi_splice "";\n'
            '    js_var $zbi_cache "-";\n'
        ),
        server="",
        who="",
        who_charged="",
        content="            js_content gateway.jsonRpc;\n",
        subrequest_locations=(
            "        # Batches with refused calls and calls whose answers have members withheld: gateway.js\n"
            "        # redirects them here, where only gateway_splice.js is imported (a module's top level runs in\n"
            "        # every request of its location).\n"
            "        location @zbi_splice {\n"
            f"            js_import splice from {SPLICE_JS_MODULE};\n"
            "            js_content splice.forwardAndSplice;\n"
            "        }\n"
            "        # One more call charged to the caller's rate bucket (the meter server applies the same zones).\n"
            + meter_location("/_zbi_meter", "$zbi_rate_key", "$zbi_bucket")
        ),
        nginx_rate_buckets=True,
    )


def lua_directives(
    paths: GatewayPaths,
    lua_module_paths: Iterable[str],
    *,
    history_cache: bool,
    rate_buckets: dict[str, RateLimit],
) -> EngineDirectives:
    """`lua_module_paths`: the dynamic modules to load (Debian's ndk and lua modules in the tests; none in
    OpenResty, which has lua-nginx-module built in); `rate_buckets` by name, which zbi_rate.lua counts. The variables
    the handlers set are the server's, set in its rewrite phase, which runs once per request: an internal redirect to
    a named location skips it (the values stay), and a subrequest of lua-nginx-module has variables of its own."""
    who = (
        "            # Who the caller is and what they may do, before the body: the verdict, and the variables\n"
        "            # the caps and the log read, set by Lua itself (no map runs for them).\n"
    )
    cache_variables = (
        '        set $zbi_cache_key "";\n'
        '        set $zbi_cache_tip "";\n'
        '        set $zbi_cache_id "";\n'
        '        set $zbi_confirmations "@zbi:confirmations@";\n'
        if history_cache
        else ""
    )
    return EngineDirectives(
        main="".join(f"load_module {path};\n" for path in lua_module_paths),
        http=(
            f'    lua_package_path "{paths.config_dir}/?.lua;;";\n'
            "    # The callers' rate buckets, counted by zbi_rate.lua for all workers (nginx's limit_req rule).\n"
            + lua_dictionary(rate_buckets)
            + "    # Loaded once, before the workers fork (a syntax error stops nginx at start); kept for their "
            "lives.\n"
            "    init_by_lua_block {\n"
            f"        {lua_configuration(rate_buckets)}\n"
            '        zbi = require "zbi_gateway"; zbi_cache = require "zbi_cache"\n'
            "    }\n"
        ),
        server=(
            "        # What the handlers set, for the access log and the cache (Lua assigns only variables `set`\n"
            "        # made).\n"
            '        set $zbi_methods "";\n'
            '        set $zbi_method "-";\n'
            '        set $zbi_cache "-";\n'
            "        # Who the log names where no key is checked (a location answering alone); who() sets it\n"
            "        # otherwise.\n"
            '        set $zbi_user "-";\n'
            "        # The caller's rate key and bucket (read by the caps and sent to the history cache's filler);\n"
            "        # who() sets them.\n"
            '        set $zbi_rate_key "";\n'
            '        set $zbi_bucket "";\n' + cache_variables
        ),
        who=who + "            set_by_lua_block $zbi_verdict { return zbi.who() }\n",
        who_charged=(
            who + "            # Charged one call to the caller's rate bucket too: without room, 429 (the location's\n"
            "            # error page for it).\n"
            "            set_by_lua_block $zbi_verdict { return zbi.who(true) }\n"
            "            if ($zbi_verdict = limited) { return 429; }\n"
        ),
        content="            content_by_lua_block { zbi.json_rpc() }\n",
        subrequest_locations="",
        nginx_rate_buckets=False,
    )


def lua_set(names: Iterable[str]) -> str:
    """A set of names as a Lua table literal: name -> true."""
    return "{" + ", ".join(f"[{json.dumps(name)}] = true" for name in sorted(names)) + "}"


def _filled(module: str, substitutions: dict[str, str]) -> str:
    template = resources.files("zbi_infra.render").joinpath(module).read_text()
    for placeholder, value in substitutions.items():
        template = template.replace(placeholder, value)
    return template


def lua_modules(
    paths: GatewayPaths,
    *,
    zcashd_wallet: bool = False,
    relay_port: int = RELAY_PORT,
    history_cache: GatewayCache | None = None,
) -> dict[str, str]:
    """The Lua engine's modules by file name, filled from the same lists and settings gateway.js and
    gateway_cache.js are rendered from (`history_cache` None: the cache's module serves nothing)."""
    withheld = "{" + ", ".join(f"[{json.dumps(m)}] = {{{', '.join(json.dumps(f) for f in fields)}}}"
                               for m, fields in sorted(WITHHELD.items())) + "}"  # fmt: skip
    gateway = _filled(
        LUA_GATEWAY_MODULE,
        {
            "__TABLE_DIR__": paths.config_dir,
            "__KEY_FILE_PREFIX__": KEY_FILE_PREFIX,
            "__ANONYMOUS_FILE__": ANONYMOUS_FILE,
            "__MAX_BATCH__": str(DEFAULT_MAX_BATCH),
            "__GRPC_SERVICE__": light_wallet_service()[0],
            "__ZCASHD_PATH__": ZCASHD_PATH,
            "__NEVER__": lua_set(NEVER_EXPOSED),
            "__NEVER_PREFIXES__": "{" + ", ".join(json.dumps(p) for p in NEVER_EXPOSED_PREFIXES) + "}",
            "__PREFIX_EXCEPTIONS__": lua_set(Z_CHAIN_QUERIES),
            "__GRPC_HEADERS__": lua_set({*GRPC_FORWARDED_HEADERS, *GRPC_BLANKED_HEADERS}),
            "__WITHHELD__": withheld,
            "__ZCASHD_NEVER__": lua_set(gateway_refused(zcashd_wallet)),
        },
    )
    splice = _filled(
        LUA_SPLICE_MODULE,
        {
            "__RELAY_PORT__": str(relay_port),
            "__MAX_ANSWER__": str(MAX_SPLICED_ANSWER_BYTES),
            "__UPSTREAM_AUTH__": paths.upstream_auth_file,
        },
    )
    json_text = _filled(LUA_JSON_TEXT_MODULE, {})
    cache = _filled(
        LUA_CACHE_MODULE,
        {
            "__ENABLED__": "true" if history_cache is not None else "false",
            "__FINAL_DEPTH__": str(FINAL_DEPTH),
            "__MAX_ANSWER__": str(history_cache.max_answer_bytes if history_cache else MAX_CACHED_ANSWER_BYTES),
            "__TIP_MAX_AGE__": str(history_cache.tip_max_age_seconds if history_cache else TIP_MAX_AGE_SECONDS),
            "__FILL_PORT__": str(history_cache.fill_port if history_cache else FILL_PORT),
        },
    )
    return {
        LUA_GATEWAY_MODULE: gateway,
        LUA_SPLICE_MODULE: splice,
        LUA_JSON_TEXT_MODULE: json_text,
        LUA_CACHE_MODULE: cache,
        LUA_RATE_MODULE: _filled(LUA_RATE_MODULE, {}),
    }
