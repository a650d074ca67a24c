"""The gateway's cache of answers about final blocks (history.cache): its njs module (gateway_cache.js), its part of
nginx.conf, its access-log fields and its metrics.

Why nginx's own proxy cache rather than a cache tier (Redis, Varnish): the answers are immutable, so nothing needs
invalidating, only evicting; nginx's cache already keeps entries on a volume with LRU eviction under `max_size`, one
fill per key at a time (`proxy_cache_lock`), and serves hits in the same process that enforces keys, allowlists and
rates, with no extra hop, pod or credential. Its cost: each replica fills its own cache (no sharing between replicas),
and nginx exposes no eviction counter (the dashboard derives evictions, see docs/history-cache.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from zbi_infra.config.history import FINAL_DEPTH
from zbi_infra.config.history_cache import HistoryCacheConfig

JS_MODULE = "gateway_cache.js"
# The loopback server that fills the cache from the node (nginx.conf's proxy cache reads through it).
FILL_PORT = 8445
# Where each replica's cache volume is mounted (a generic ephemeral volume, zbi_infra/node/gateway_cache_volume.py).
POD_CACHE_DIR = "/var/cache/zbi-history"
# How long the tip the gateway learned may be old: one node call a second at most, whatever the load. Zebra's
# blocks come every 75 s; a tip a second old makes blocks look shallower than they are (never deeper), so it can
# only keep an answer out of the cache, and `confirmations` computed from it is what a node answer already in
# flight would say.
TIP_SECONDS = 1
# The largest answer stored: the largest Zcash block's hex (verbosity 0, ~3.9 MB for Testnet 141042) fits. A hit is
# held in memory while its confirmations are filled in, so larger answers (verbosity 2 of the largest blocks) pass
# uncached rather than costing the replica more memory per request.
MAX_CACHED_ANSWER_BYTES = 4 * 1024 * 1024
# The share of the volume nginx's cache may fill: its cache manager enforces `max_size` after the fact (every few
# seconds), and fills in progress write their temporary files on the same volume.
MAX_SIZE_SHARE = 0.85
# The access-log fields of the cache: what it did with the request ("hit", "miss" = filled and stored, "pass" = a
# cached method whose answer is not cacheable, "-" = not a cached method), and the bytes a miss stored.
LOG_FIELDS = {"cache": "$zbi_cache", "cache_bytes": "$zbi_cache_bytes"}
REQUESTS = "zbi_gateway_cache_requests_total"
STORED_BYTES = "zbi_gateway_cache_stored_bytes_total"
OUTCOMES = ("hit", "miss", "pass")


@dataclass(frozen=True)
class GatewayCache:
    """One gateway's cache, as nginx.conf needs it."""

    size_gib: int
    keys_zone_mib: int
    inactive_days: int
    cache_dir: str = POD_CACHE_DIR
    fill_port: int = FILL_PORT
    max_answer_bytes: int = MAX_CACHED_ANSWER_BYTES

    @classmethod
    def of(cls, config: HistoryCacheConfig, **where: str | int) -> GatewayCache:
        return cls(config.size_gib, config.keys_zone_mib, config.inactive_days, **where)  # type: ignore[arg-type]

    @property
    def max_size_mib(self) -> int:
        return int(self.size_gib * 1024 * MAX_SIZE_SHARE)


def cache_js(cache: GatewayCache | None, upstream_auth_file: str) -> str:
    """gateway_cache.js, which gateway.js imports whether or not the instance caches (disabled: it serves nothing).
    `upstream_auth_file` holds the node's `user:password`: the filler serves only callers that present it."""
    template = resources.files("zbi_infra.render").joinpath(JS_MODULE).read_text()
    substitutions = {
        "__ENABLED__": json.dumps(cache is not None),
        "__FINAL_DEPTH__": str(FINAL_DEPTH),
        "__MAX_ANSWER__": str(cache.max_answer_bytes if cache else MAX_CACHED_ANSWER_BYTES),
        "__UPSTREAM_AUTH__": upstream_auth_file,
    }
    for placeholder, value in substitutions.items():
        template = template.replace(placeholder, value)
    return template


def http_directives(cache: GatewayCache | None, temp_dir: str) -> str:
    """In nginx.conf's http block: the cache's variables always (the access log names them), its zones when on."""
    variables = '    js_var $zbi_cache "-";\n    js_var $zbi_cache_bytes 0;\n'
    if cache is None:
        return variables
    return (
        variables + f"    js_import history from {JS_MODULE};\n"
        "    # Answers about final blocks, on the cache volume; entries unused for `inactive` go first, then the\n"
        "    # least recently used when the volume's share is full. A megabyte of keys zone holds ~8,000 keys.\n"
        f"    proxy_cache_path {cache.cache_dir} levels=1:2 keys_zone=zbi_history:{cache.keys_zone_mib}m "
        f"max_size={cache.max_size_mib}m inactive={cache.inactive_days}d use_temp_path=off;\n"
        "    # The tip the gateway last learned, for one second.\n"
        f"    proxy_cache_path {temp_dir}/zbi-tip levels=1 keys_zone=zbi_tip:1m max_size=1m inactive=1m "
        "use_temp_path=off;\n"
    )


def _to_node(indent: str, upstream_auth_include: str) -> str:
    """An internal location's proxy to the node, with the node's credentials (as the gateway's own proxy)."""
    from zbi_infra.render.gateway import proxy_to_node  # gateway.py imports this module for its log fields

    return f"{indent}internal;\n{indent}rewrite ^ / break;\n{indent}proxy_pass http://zbi_rpc;\n" + proxy_to_node(
        indent, upstream_auth_include
    )


def server_locations(cache: GatewayCache | None, upstream_auth_include: str) -> str:
    """In the public server: the tip (micro-cached) and the cache, both internal (reached by gateway_cache.js). The
    node's credentials come from `upstream_auth_include` (a `proxy_set_header` read at start, as for the proxy)."""
    if cache is None:
        return ""
    return (
        "        location = /_zbi_tip {\n"
        + _to_node("            ", upstream_auth_include)
        + "            proxy_method POST;\n"
        "            proxy_pass_request_body off;\n"
        """            proxy_set_body '{"jsonrpc":"2.0","id":"zbi-tip","method":"getblockcount","params":[]}';\n"""
        "            proxy_cache zbi_tip;\n"
        "            proxy_cache_key tip;\n"
        f"            proxy_cache_valid 200 {TIP_SECONDS}s;\n"
        "            proxy_cache_lock on;\n"
        "        }\n"
        "        location /_zbi_cache/ {\n"
        "            internal;\n"
        f"            proxy_pass http://127.0.0.1:{cache.fill_port}/;\n"
        "            proxy_http_version 1.1;\n"
        "            proxy_pass_request_headers off;\n"
        "            proxy_pass_request_body off;\n"
        f"            include {upstream_auth_include};\n"
        "            # A subrequest inherits the caller's Content-Length: the filler must not wait for that body.\n"
        '            proxy_set_header Content-Length "";\n'
        "            proxy_cache zbi_history;\n"
        "            # The canonical form of the call (gateway_cache.js), never the body; the tip is an argument.\n"
        "            proxy_cache_key $uri;\n"
        "            # Stored until evicted; the filler marks what must not be stored with X-Accel-Expires: 0.\n"
        "            proxy_cache_valid 200 3650d;\n"
        "            proxy_cache_lock on;\n"
        "            proxy_cache_lock_timeout 60s;\n"
        "            proxy_read_timeout 65s;\n"
        "            proxy_buffer_size 64k;\n"
        "            proxy_buffers 16 64k;\n"
        f"            subrequest_output_buffer_size {cache.max_answer_bytes + 64 * 1024};\n"
        "        }\n"
    )


def fill_server(cache: GatewayCache | None, upstream_auth_include: str) -> str:
    """The loopback server behind the cache: asks the node (the checked call, in canonical form) and says what may
    be stored."""
    if cache is None:
        return ""
    return (
        "    server {\n"
        f"        listen 127.0.0.1:{cache.fill_port};\n"
        "        access_log off;\n"
        "        location / {\n"
        "            # Who calls this loopback port must hold the node's credentials (history.fill checks).\n"
        "            js_content history.fill;\n"
        "        }\n"
        "        location = /_zbi_fill_node {\n"
        + _to_node("            ", upstream_auth_include)
        + f"            subrequest_output_buffer_size {cache.max_answer_bytes + 64 * 1024};\n"
        "        }\n"
        "    }\n"
    )


def mtail_stanza() -> str:
    """Cache outcomes by user and method (hits labelled as such), and the bytes misses stored, from the access log's
    last two fields (gateway.py puts LOG_FIELDS last)."""
    outcomes = "|".join(OUTCOMES)
    who = r'"user":"(?P<user>[^"\\]*)","api":"json-rpc","method":"(?P<method>[^"\\]*)"'
    what = rf'"cache":"(?P<outcome>{outcomes})","cache_bytes":"(?P<bytes>\d+)"'
    return f"""
counter {REQUESTS} by user, method, outcome
counter {STORED_BYTES}

/{who}.*{what}/ {{
  {REQUESTS}[$user][$method][$outcome]++
  {STORED_BYTES} += $bytes
}}
"""
