"""The gateway's cache of answers about final blocks (history.cache): its njs module (gateway_cache.js), its part of
nginx.conf, its access-log fields and its metrics.

Why nginx's own proxy cache rather than a cache tier (Redis, Varnish): the answers are immutable, so nothing needs
invalidating, only evicting; nginx's cache already keeps entries on a volume with LRU eviction under `max_size`, and
serves hits streamed from that volume in the same process that enforces keys, allowlists and rates, with no extra
hop, pod or credential. Its cost: each replica fills its own cache (no sharing between replicas),
and nginx exposes no eviction counter (the dashboard derives evictions, see docs/history-cache.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from zbi_infra.config.history import FINAL_DEPTH
from zbi_infra.config.history_cache import HistoryCacheConfig
from zbi_infra.config.instance import GatewayEngine
from zbi_infra.render.gateway_rate import meter_location

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
# How old a tip may be and still be used: while a slow node is asked for the next one, nginx serves the last (one
# node call at a time per replica, whatever the load); past this age calls go to the node uncached. A stale tip
# understates depths and `confirmations`, never overstates them.
TIP_MAX_AGE_SECONDS = 10
# The largest answer stored: the largest Zcash block's hex (verbosity 0, ~3.9 MB for Testnet 141042) fits. A hit
# streams from the volume whatever its size; a miss is read whole by the filler's njs (to find what changes with the
# tip), so larger answers pass uncached rather than costing a fill more memory.
MAX_CACHED_ANSWER_BYTES = 4 * 1024 * 1024
# What one fill in progress may hold, in answers of the largest stored size: the node's answer as nginx's subrequest
# buffer, as njs's string, parsed, rewritten with its placeholders, and as the filler's reply (measured with
# benchmarks/history_cache.py --fill-memory: one fill of the 3.87 MB block at verbosity 2 raised nginx by 18-26 MiB).
FILL_COST_ANSWERS = 6
# The filler's status for "not mine" (nginx.conf's error_page forwards the caller's own call to the node); no node
# answers it.
NOT_MINE = 555
# The filler's "the node is down or timed out": answered as any call the node cannot answer (502).
NODE_DOWN = 556
# The share of the volume nginx's cache may fill: its cache manager enforces `max_size` after the fact (every few
# seconds), and fills in progress write their temporary files on the same volume.
MAX_SIZE_SHARE = 0.85
# How long the front waits for the filler: its two node calls at most (the by-hash check, then the call), each
# bounded by the node proxy's own read timeout (render/gateway.py, 60 s), and a margin.
FILL_READ_TIMEOUT_SECONDS = 2 * 60 + 5
# The access-log fields of the cache: what it did with the request ("hit", "miss" = filled and stored, "pass" = a
# cached method whose answer is not cacheable, "-" = not a cached method), and the bytes a miss stored.
LOG_FIELDS = {"cache": "$zbi_cache_outcome", "cache_bytes": "$zbi_cache_stored_bytes"}
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
    fills_at_once: int = 4
    tip_max_age_seconds: int = TIP_MAX_AGE_SECONDS

    @classmethod
    def of(cls, config: HistoryCacheConfig, **where: str | int) -> GatewayCache:
        return cls(
            config.size_gib,
            config.keys_zone_mib,
            config.inactive_days,
            fills_at_once=config.fills_at_once,
            **where,  # type: ignore[arg-type]
        )

    @property
    def max_size_mib(self) -> int:
        return int(self.size_gib * 1024 * MAX_SIZE_SHARE)

    @property
    def fill_memory_mib(self) -> int:
        """What the fills in progress may hold at once, MiB: added to the nginx container's memory."""
        return -(-self.fills_at_once * FILL_COST_ANSWERS * self.max_answer_bytes // (1024 * 1024))


def cache_js(cache: GatewayCache | None, upstream_auth_file: str, relay_port: int) -> str:
    """gateway_cache.js, rendered into every gateway's ConfigMap but imported by gateway.js only where the instance
    caches (`cache` None: the module, never imported, carries the defaults).
    `upstream_auth_file` holds the node's `user:password`: the filler serves only callers that present it."""
    template = resources.files("zbi_infra.render").joinpath(JS_MODULE).read_text()
    substitutions = {
        "__ENABLED__": json.dumps(cache is not None),
        "__FINAL_DEPTH__": str(FINAL_DEPTH),
        "__MAX_ANSWER__": str(cache.max_answer_bytes if cache else MAX_CACHED_ANSWER_BYTES),
        "__TIP_MAX_AGE__": str(cache.tip_max_age_seconds if cache else TIP_MAX_AGE_SECONDS),
        "__UPSTREAM_AUTH__": upstream_auth_file,
        "__RELAY_PORT__": str(relay_port),
    }
    for placeholder, value in substitutions.items():
        template = template.replace(placeholder, value)
    return template


def log_fields(cache: GatewayCache | None) -> dict[str, str]:
    """The cache's access-log fields: its maps' variables, or, without a cache, what they would always say ("-", no
    bytes) as constants, so that no request evaluates the maps (about 3,300 instructions of a ~100,000 request,
    benchmarks/gateway_instructions.py)."""
    return LOG_FIELDS if cache is not None else {"cache": "-", "cache_bytes": "0"}


def http_directives(cache: GatewayCache | None, temp_dir: str, engine: GatewayEngine = "njs") -> str:
    """In nginx.conf's http block, when the cache is on: its log fields' maps, its zones and the filler's upstream,
    and for the njs engine its module and variables (the Lua engine's are the server's, gateway_engines.py)."""
    if cache is None:
        return ""
    variables = (
        '    # What the cache did: njs says "lookup" when it handed the call to the cache, whose own status tells\n'
        "    # a hit from a miss stored now (the filler's X-Zbi-Stored); everything else that was looked up passed.\n"
        '    map "$zbi_cache:$upstream_cache_status:$upstream_http_x_zbi_stored" $zbi_cache_outcome {\n'
        "        default $zbi_cache;\n"
        "        ~^lookup:HIT: hit;\n"
        "        ~^lookup:MISS:1$ miss;\n"
        "        ~^lookup: pass;\n"
        "    }\n"
        "    map $zbi_cache_outcome $zbi_cache_stored_bytes { miss $upstream_response_length; default 0; }\n"
    )
    njs = (
        f"    js_import history from {JS_MODULE};\n"
        "    # The call's canonical key, the tip it was looked up at, and the caller's id as text (set by njs).\n"
        '    js_var $zbi_cache_key "";\n'
        '    js_var $zbi_cache_tip "";\n'
        '    js_var $zbi_cache_id "";\n'
        "    js_set $zbi_confirmations history.confirmations;\n"
    )
    return (
        variables
        + (njs if engine == "njs" else "")
        + "    # Answers about final blocks, on the cache volume; entries unused for `inactive` go first, then the\n"
        "    # least recently used when the volume's share is full. A megabyte of keys zone holds ~8,000 keys.\n"
        f"    proxy_cache_path {cache.cache_dir} levels=1:2 keys_zone=zbi_history:{cache.keys_zone_mib}m "
        f"max_size={cache.max_size_mib}m inactive={cache.inactive_days}d use_temp_path=off;\n"
        "    # The tip the gateway last learned, for one second: read by each call (zbi_tip), and kept by the filler\n"
        "    # while the node is asked for the next (zbi_tip_last).\n"
        + (
            # njs reads it by subrequest; the Lua engine asks the filler's copy over a cosocket (no subrequest in an
            # HTTP/2 request).
            f"    proxy_cache_path {temp_dir}/zbi-tip levels=1 keys_zone=zbi_tip:1m max_size=1m inactive=1m "
            "use_temp_path=off;\n"
            if engine == "njs"
            else ""
        )
        + f"    proxy_cache_path {temp_dir}/zbi-tip-last levels=1 keys_zone=zbi_tip_last:1m max_size=1m inactive=1m "
        "use_temp_path=off;\n"
        f"    upstream zbi_fill {{\n        server 127.0.0.1:{cache.fill_port};\n        keepalive 8;\n    }}\n"
        "    limit_conn_zone $server_port zone=zbi_fills:1m;\n"
    )


def _to_node(indent: str, upstream_auth_include: str, *, internal: bool = True) -> str:
    """A location's proxy to the node, with the node's credentials (as the gateway's own proxy); internal unless
    said otherwise."""
    from zbi_infra.render.gateway import proxy_to_node  # gateway.py imports this module for its log fields

    head = f"{indent}internal;\n" if internal else ""
    return f"{head}{indent}rewrite ^ / break;\n{indent}proxy_pass http://zbi_rpc;\n" + proxy_to_node(
        indent, upstream_auth_include
    )


def server_locations(cache: GatewayCache | None, upstream_auth_include: str, engine: GatewayEngine = "njs") -> str:
    """In the public server: the tip (micro-cached, njs's, which reads it by subrequest) and the cache, both internal
    (reached from the engine's cache module). The node's credentials come from `upstream_auth_include` (a
    `proxy_set_header` read at start, as for the proxy)."""
    if cache is None:
        return ""
    tip = (
        "        # The tip for this second; past it, from the filler's copy, which gives the last tip while one\n"
        "        # caller asks the node for the next (nginx does that for main requests only; this is a subrequest).\n"
        "        location = /_zbi_tip {\n"
        "            internal;\n"
        "            proxy_pass http://zbi_fill/_zbi_tip;\n"
        "            proxy_method GET;\n"
        "            proxy_http_version 1.1;\n"
        "            proxy_pass_request_headers off;\n"
        "            proxy_pass_request_body off;\n"
        '            proxy_set_header Connection "";\n'
        '            proxy_set_header Content-Length "";\n'
        "            proxy_cache zbi_tip;\n"
        "            proxy_cache_key tip;\n"
        f"            proxy_cache_valid 200 {TIP_SECONDS}s;\n"
        "        }\n"
    )
    return (
        (tip if engine == "njs" else "")
        + "        # A checked call the engine handed over: answered from the volume, or filled by the loopback\n"
        "        # filler. The caller's request is the POST whose body was read; the filler gets the canonical call\n"
        "        # in the URI.\n"
        "        location @zbi_history {\n"
        "            proxy_pass http://zbi_fill$zbi_cache_key?tip=$zbi_cache_tip;\n"
        "            proxy_method GET;\n"
        "            proxy_http_version 1.1;\n"
        "            proxy_pass_request_headers off;\n"
        "            proxy_pass_request_body off;\n"
        '            proxy_set_header Connection "";\n'
        '            proxy_set_header Content-Length "";\n'
        f"            include {upstream_auth_include};\n"
        "            # Whom the filler charges for the extra node calls a miss may cost (its meter, as the batch's).\n"
        "            proxy_set_header X-Zbi-Rate-Key $zbi_rate_key;\n"
        "            proxy_set_header X-Zbi-Bucket $zbi_bucket;\n"
        "            proxy_cache zbi_history;\n"
        "            proxy_cache_methods POST;\n"
        "            # The canonical form of the call (gateway_cache.js), never the body; the tip is no part of it.\n"
        "            proxy_cache_key $zbi_cache_key;\n"
        "            # Stored until evicted; the filler marks what must not be stored with X-Accel-Expires: 0.\n"
        "            proxy_cache_valid 200 3650d;\n"
        "            # No proxy_cache_lock: a caller never waits for another caller's fill (an answer that cannot be\n"
        "            # stored, a recent block by hash, would queue every caller of it behind the one before).\n"
        f"            proxy_read_timeout {FILL_READ_TIMEOUT_SECONDS}s;\n"
        "            proxy_buffer_size 64k;\n"
        "            proxy_buffers 16 64k;\n"
        "            proxy_hide_header X-Zbi-Stored;\n"
        "            proxy_hide_header X-Zbi-Height;\n"
        "            # Not the filler's to answer, or the filler unreachable: the caller's own call goes to the node.\n"
        "            proxy_intercept_errors on;\n"
        f"            error_page {NOT_MINE} 400 403 502 504 = @zbi_rpc;\n"
        "            # The caller over its rate for the second node call a miss would cost: refused in JSON-RPC.\n"
        "            error_page 429 = @rate_limited;\n"
        f"            error_page {NODE_DOWN} = @node_unavailable;\n"
        "            # The placeholders, filled as the answer streams (a hit is never read whole into memory).\n"
        "            sub_filter_types application/json;\n"
        "            sub_filter_once off;\n"
        "            sub_filter '@zbi:id@' $zbi_cache_id;\n"
        "            sub_filter '@zbi:confirmations@' $zbi_confirmations;\n"
        + (
            "            # The Lua engine computes it once the stored answer's headers (its height) are known.\n"
            "            header_filter_by_lua_block { zbi_cache.confirmations() }\n"
            if engine == "lua"
            else ""
        )
        + "        }\n"
    )


def fill_server(cache: GatewayCache | None, upstream_auth_include: str, engine: GatewayEngine = "njs") -> str:
    """The loopback server behind the cache: asks the node (the checked call, in canonical form) and says what may
    be stored. At most `fills_at_once` fills at once; the others are "not mine" and go to the node uncached."""
    if cache is None:
        return ""
    return (
        "    server {\n"
        f"        listen 127.0.0.1:{cache.fill_port};\n"
        "        access_log off;\n"
        "        location / {\n"
        "            # Who calls this loopback port must hold the node's credentials (history.fill checks).\n"
        f"            limit_conn zbi_fills {cache.fills_at_once};\n"
        f"            limit_conn_status {NOT_MINE};\n"
        + (
            "            content_by_lua_block { zbi_cache.fill() }\n"
            if engine == "lua"
            else "            js_content history.fill;\n"
        )
        + "        }\n"
        "        # The tip the node last gave, kept a second, one ask of the node at a time: while a slow node is\n"
        "        # asked, callers get the last one (gateway_cache.js ignores one older than its bound).\n"
        "        location = /_zbi_tip {\n"
        "            proxy_pass http://zbi_fill/_zbi_tip_node;\n"
        "            proxy_http_version 1.1;\n"
        '            proxy_set_header Connection "";\n'
        "            proxy_cache zbi_tip_last;\n"
        "            proxy_cache_key tip;\n"
        f"            proxy_cache_valid 200 {TIP_SECONDS}s;\n"
        "            proxy_cache_lock on;\n"
        "            proxy_cache_use_stale updating error timeout http_502 http_504;\n"
        "        }\n"
        "        # The tip, stamped with this nginx's clock (the micro-cache keeps the stamp with it).\n"
        "        location = /_zbi_tip_node {\n"
        + _to_node("            ", upstream_auth_include, internal=False)
        + "            proxy_method POST;\n"
        "            proxy_pass_request_body off;\n"
        """            proxy_set_body '{"jsonrpc":"2.0","id":"zbi-tip","method":"getblockcount","params":[]}';\n"""
        "            add_header X-Zbi-Tip-At $msec always;\n"
        "        }\n"
        # The Lua engine's filler charges the caller itself (zbi_rate.lua): no meter.
        + (
            ""
            if engine == "lua"
            else "        # One more node call charged to the caller the front named (only the front holds the node's\n"
            "        # credentials, which the filler checked).\n"
            + meter_location("/_zbi_fill_meter", "$http_x_zbi_rate_key", "$http_x_zbi_bucket")
        )
        + "    }\n"
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
