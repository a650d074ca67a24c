"""The gateway's nginx.conf (and the pod's set of files): what nginx itself enforces before and around `gateway.js`.

Before the body is read: the key (401, and refused keys rate-limited per address), the requests in progress per
address, per caller and for anonymous callers in all (429), a body timeout. Then the rate buckets (429), the body
size (413), and `gateway.js`, which hands checked calls to the proxy locations here. Every limit is per replica.
"""

from __future__ import annotations

import json
import re

from zbi_infra.config.access import AccessFile, light_wallet_service
from zbi_infra.config.instance import GATEWAY_MAX_CALLS_PER_CALLER
from zbi_infra.render import gateway_cache, gateway_rate, gateway_zcashd
from zbi_infra.render.gateway import (
    ACCESS_LOG_FIELDS,
    AUTH_FAILURE_RATE,
    BODY_TIMEOUT_SECONDS,
    DEFAULT_MEMORY_LIMIT_MIB,
    JS_MODULE,
    JSON_TEXT_MODULE,
    MAX_REQUESTS_PER_ADDRESS,
    POD_LISTEN_PORT,
    POD_PATHS,
    POD_TLS_DIR,
    RELAY_PORT,
    SPLICE_JS_MODULE,
    SYSLOG_TAG,
    WORKER_CONNECTIONS,
    WORKER_PROCESSES,
    GatewayPaths,
    GatewayUpstreams,
    anonymous_requests_cap,
    body_buffer_bytes,
    gateway_js,
    gateway_splice_js,
    json_text_js,
    proxy_to_node,
    rate_buckets,
    spliced_batches_cap,
    users_files,
)
from zbi_infra.render.gateway_cache import GatewayCache
from zbi_infra.render.gateway_engines import Engine, lua_directives, lua_modules, njs_directives
from zbi_infra.render.gateway_grpc import UNSERVED_GRPC, grpc_locations
from zbi_infra.render.nginx_process import http_writable_paths, main_context

# Where nginx.org's packages (the njs engine's image, nginx-unprivileged) put the njs module.
POD_JS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"
SPLICE_BUSY = (
    '{"result":null,"error":{"code":-32005,"message":"too many batches with refused calls in progress on this '
    'gateway: retry later, or send the refused calls apart"},"id":null}'
)
UNAUTHENTICATED = json.dumps(
    {"result": None, "error": {"code": -32600, "message": "a valid key is required: basic auth, user name and key"},
     "id": None},
    separators=(",", ":"),
)  # fmt: skip


def _who_fields() -> str:
    """$zbi_who is "<verdict> <rate key> <bucket> <user>" (gateway.js's who(), and the meter's from its headers); a
    refused caller's rate key and bucket are "-": counted in no bucket (an empty limit key is not counted), only in
    the refused keys' zone. The Lua engine sets these variables itself, so their maps run only for njs and the
    meter (a variable a request has set is not computed by its map)."""
    return (
        "    map $zbi_who $zbi_verdict { ~^(\\S+) $1; default unauthenticated; }\n"
        '    map $zbi_who $zbi_rate_key { "~^\\S+ - " ""; "~^\\S+ (\\S+) " $1; default ""; }\n'
        '    map $zbi_who $zbi_bucket { "~^\\S+ \\S+ (\\S+) " $1; default ""; }\n'
        '    map $zbi_who $zbi_user { "~ (\\S+)$" $1; default "-"; }'
    )


def _relay(indent: str) -> str:
    return (
        f"{indent}rewrite ^ /? break;\n"
        f"{indent}proxy_pass http://zbi_rpc;\n"
        f"{indent}proxy_http_version 1.1;\n"
        f'{indent}proxy_set_header Connection "";\n'
        f"{indent}proxy_connect_timeout 2s;\n"
        f"{indent}proxy_read_timeout 60s;\n"
    )


def nginx_conf(
    access: AccessFile,
    paths: GatewayPaths,
    *,
    listen: str,
    rpc_upstream: str,
    grpc_upstream: str | None = None,
    grpc_upstream_tls: bool = False,
    max_body_bytes: int = 64 * 1024,
    js_module_path: str = POD_JS_MODULE,
    temp_dir: str = "/tmp",
    user: str | None = None,
    metrics_syslog: str | None = None,
    grpc_upstream_ca: str | None = None,
    grpc_upstream_name: str | None = None,
    relay_port: int = RELAY_PORT,
    workers: int | str = WORKER_PROCESSES,
    memory_limit_mib: int = DEFAULT_MEMORY_LIMIT_MIB,
    zcashd_upstream: str | None = None,
    history_cache: GatewayCache | None = None,
    engine: Engine = "njs",
    lua_module_paths: tuple[str, ...] = (),
) -> str:
    """nginx.conf for one instance's gateway. `listen` is `host:port`; TLS (and HTTP/2 for gRPC) when `paths` names a
    certificate; the light-wallet server's gRPC service is proxied when `grpc_upstream` is given, its certificate
    verified against `grpc_upstream_ca` for `grpc_upstream_name` when both are given. `metrics_syslog` (`host:port`)
    sends a copy of the access log to the metrics sidecar. `memory_limit_mib`, the container's memory limit, sizes
    how many batches with refused calls the replica splices at once. `zcashd_upstream` (`host:port`): the zcashd
    sidecar's JSON-RPC, served at /zcashd (render/gateway_zcashd.py). `engine`: njs, or Lua (render/gateway_engines.py;
    `lua_module_paths` the dynamic modules to load, none where nginx has them built in)."""
    buckets = rate_buckets(access)
    scripts = (
        lua_directives(paths, lua_module_paths, history_cache=history_cache is not None, rate_buckets=buckets)
        if engine == "lua"
        else njs_directives(paths, js_module_path)
    )
    service, _ = light_wallet_service()
    tls = paths.tls_certificate is not None and paths.tls_key is not None
    # nginx counts the rate buckets for njs (gateway_rate.py); the Lua engine charges them in `who_charged`.
    limits = gateway_rate.njs_limits(buckets) if scripts.nginx_rate_buckets else ""
    concurrency = (
        f"            limit_conn zbi_address {MAX_REQUESTS_PER_ADDRESS};\n"
        f"            limit_conn zbi_anonymous {anonymous_requests_cap(max_body_bytes)};\n"
        f"            limit_conn zbi_caller {GATEWAY_MAX_CALLS_PER_CALLER};"
    )
    checks = f"{concurrency}\n{limits}" if limits else concurrency
    rate_zones = (
        "    # Rate buckets: per user, or per address for anonymous callers; every call of a batch counts. "
        "Per replica.\n"
        f"{gateway_rate.njs_zones(buckets)}\n"
        if scripts.nginx_rate_buckets
        else ""
    )
    meter_upstream, meter_server = (
        (gateway_rate.meter_upstream(temp_dir), gateway_rate.meter_server(temp_dir, limits))
        if scripts.nginx_rate_buckets
        else ("", "")
    )
    # $zbi_who, split (njs's who(), the meter's); the Lua engine sets these variables itself.
    who_fields = f"{_who_fields()}\n" if engine == "njs" else ""
    tls_lines = (
        # HTTP/2 as nginx 1.25.1 and later write it (both images are 1.27 and later: they warn at every start of the
        # listen parameter it replaced).
        "        http2 on;\n"
        f"        ssl_certificate {paths.tls_certificate};\n"
        f"        ssl_certificate_key {paths.tls_key};\n"
        "        ssl_protocols TLSv1.2 TLSv1.3;\n"
        if tls
        else ""
    )
    verify = (grpc_upstream_ca, grpc_upstream_name) if grpc_upstream_ca and grpc_upstream_name else None
    grpc = grpc_locations(grpc_upstream_tls, checks, verify, scripts.who, scripts.who_charged) if grpc_upstream else ""
    # Kept-alive HTTP/2 connections to the light-wallet server: without them every call would open a connection
    # (and, upstream TLS on, a handshake).
    grpc_upstream_block = (
        f"\n    upstream zbi_grpc {{\n        server {grpc_upstream};\n        keepalive 32;\n    }}\n"
        if grpc_upstream
        else ""
    )
    log_format = json.dumps({**ACCESS_LOG_FIELDS, **gateway_cache.log_fields(history_cache)}, separators=(",", ":"))
    metrics_log = (
        f"    # A copy for the metrics sidecar (mtail), over loopback UDP: nginx never blocks on it.\n"
        # mtail reads datagrams as lines: each message ends with the newline syslog does not add.
        f"    log_format zbi_metrics escape=json '{log_format}\\n';\n"
        f"    access_log syslog:server={metrics_syslog},tag={SYSLOG_TAG},nohostname zbi_metrics;\n"
        if metrics_syslog
        else ""
    )
    grpc_api = "|".join(re.escape(name) for name in (service, *UNSERVED_GRPC))
    key_check = "            if ($zbi_verdict = unauthenticated) { rewrite ^ /_zbi_unauthenticated last; }"
    zcashd = gateway_zcashd.locations(
        zcashd_upstream,
        who=scripts.who,
        checks=f"{scripts.who_charged}{key_check}\n{checks}",
        content=scripts.content,
        proxy_to_node=proxy_to_node(" " * 12, paths.upstream_auth_include),
    )
    spliced_cap = spliced_batches_cap(memory_limit_mib)
    zcashd_relay = gateway_zcashd.relay_locations(zcashd_upstream, relay=_relay(" " * 12), spliced_cap=spliced_cap)
    return f"""# Rendered by zbi_infra.render.gateway_nginx: do not edit.
{scripts.main}{main_context(user=user, workers=workers, worker_connections=WORKER_CONNECTIONS, temp_dir=temp_dir)}
# Regular expressions (the maps splitting $zbi_who, the API by path) run for every request: compiled to machine code.
pcre_jit on;

http {{
{http_writable_paths(temp_dir)}

{scripts.http}{who_fields}{gateway_cache.http_directives(history_cache, temp_dir, engine)}
{rate_zones}    limit_req_status 429;
    limit_req_zone $binary_remote_addr zone=zbi_auth_failures:10m rate={AUTH_FAILURE_RATE.requests_per_second}r/s;
    # Requests in progress (a body being read holds its buffer): per address, per caller, anonymous in all.
    map $zbi_rate_key $zbi_anonymous_caller {{ ~^anon: anonymous; default ""; }}
    limit_conn_zone $binary_remote_addr zone=zbi_address:10m;
    limit_conn_zone $zbi_rate_key zone=zbi_caller:10m;
    limit_conn_zone $zbi_anonymous_caller zone=zbi_anonymous:1m;
    limit_conn_status 429;
    client_body_timeout {BODY_TIMEOUT_SECONDS}s;
    client_header_timeout {BODY_TIMEOUT_SECONDS}s;
    # A refused request's unread body is drained for 2 s at most before its connection closes.
    lingering_timeout 2s;

    # The user's name, never the key: the Authorization header is not logged.
    log_format zbi escape=json '{log_format}';
    access_log /dev/stdout zbi;
{metrics_log}
    map $uri $zbi_api {{
        ~^/({grpc_api})/ grpc;
        /_zbi_grpc_unauthenticated grpc;
        {gateway_zcashd.ZCASHD_PATH} zcashd-rpc;
        default json-rpc;
    }}
    # A gRPC call's outcome is its grpc-status (a header in trailers-only answers, else a trailer), not HTTP's.
    map $zbi_api $zbi_code {{
        grpc "$sent_http_grpc_status$upstream_trailer_grpc_status";
        default $status;
    }}

    upstream zbi_rpc {{
        server {rpc_upstream};
        keepalive 32;
    }}
{meter_upstream}{grpc_upstream_block}{gateway_zcashd.upstream_block(zcashd_upstream)}
    server {{
        listen {listen}{" ssl" if tls else ""};
{scripts.server}{tls_lines}        # Bodies stay in memory, where the engine reads them (a chunked one near the limit
        # included: see GATEWAY_BODY_BUFFER_FACTOR), and are refused above the limit with 413.
        client_max_body_size {max_body_bytes};
        client_body_buffer_size {body_buffer_bytes(max_body_bytes)};
        # Refusals nginx itself makes (429 included, from a named location) still answer in JSON-RPC's shape.
        recursive_error_pages on;
        error_page 413 = @too_large;
        error_page 429 = @rate_limited;
        # Refused keys pass here to be counted per address (a rate limit runs after the rewrite phase, where
        # the key is checked) and are refused without their body being read.
        location = /_zbi_unauthenticated {{
            internal;
            limit_req zone=zbi_auth_failures burst={AUTH_FAILURE_RATE.effective_burst()} nodelay;
            error_page 403 = @unauthenticated;
            deny all;
            # A refused key's connection is not kept for another try.
            keepalive_timeout 0;
        }}
        location @unauthenticated {{
            add_header WWW-Authenticate 'Basic realm="zbi"' always;
            default_type application/json;
            return 401 '{UNAUTHENTICATED}';
        }}
        # nginx refuses a Content-Length over the limit before any handler ran: the Lua engine identifies the
        # caller here for the log (njs does when the log reads $zbi_who).
        location @too_large {{
{scripts.who}            default_type application/json;
            return 413 '{{"result":null,"error":{{"code":-32600,"message":"request body too large"}},"id":null}}';
        }}
        location @rate_limited {{
            # Over its limits, a caller's connection is not kept open for more.
            keepalive_timeout 0;
            default_type application/json;
            return 429 '{{"result":null,"error":{{"code":-32005,"message":"rate limit reached"}},"id":null}}';
        }}
        location @node_unavailable {{
            default_type application/json;
            return 502 '{{"result":null,"error":{{"code":-32603,"message":"the node is unavailable"}},"id":null}}';
        }}

        location = /healthz {{
            access_log off;
            return 200 "ok\\n";
        }}

        location / {{
{scripts.who_charged}            # The key is checked before the body is read: a caller without one costs no buffer.
            if ($zbi_verdict = unauthenticated) {{ rewrite ^ /_zbi_unauthenticated last; }}
{checks}
{scripts.content}        }}

        # Checked calls, as the caller sent them; the node's answer streams back unbuffered, its status and body
        # as the node gave them (a JSON-RPC error with HTTP 500 included). nginx's 502/504 mean the node is down.
        location @zbi_rpc {{
            rewrite ^ /? break;
            proxy_pass http://zbi_rpc;
{proxy_to_node("            ", paths.upstream_auth_include)}            error_page 502 504 = @node_unavailable;
        }}
{scripts.subrequest_locations}
{zcashd}{gateway_cache.server_locations(history_cache, paths.upstream_auth_include, engine)}{grpc}    }}
{gateway_cache.fill_server(history_cache, paths.upstream_auth_include, engine)}
    # The relay through which the engine reads the node's answers (a batch it splices, a single call whose answer has
    # members withheld): the caller of this loopback port must hold the node's credentials, as with the node itself.
    # A batch's answer is held in memory (up to MAX_SPLICED_ANSWER_BYTES), so the replica reads only so many at once
    # (from its memory limit); the others get a JSON-RPC error, which njs passes on. A single call's answer (getinfo)
    # is small: not counted.
    limit_conn_zone $server_port zone=zbi_spliced:1m;
    server {{
        listen 127.0.0.1:{relay_port};
        access_log off;
        error_page 429 = @busy;
        location @busy {{
            default_type application/json;
            return 429 '{SPLICE_BUSY}';
        }}
        location / {{
{_relay("            ")}        }}
        location = /batch {{
            limit_conn zbi_spliced {spliced_cap};
{_relay("            ")}        }}
{zcashd_relay}    }}
{meter_server}}}
"""


def pod_files(
    access: AccessFile,
    upstreams: GatewayUpstreams,
    *,
    max_body_bytes: int,
    metrics_syslog: str,
    probe_key_sha256: str | None = None,
    memory_limit_mib: int = DEFAULT_MEMORY_LIMIT_MIB,
    history_cache: GatewayCache | None = None,
    engine: Engine = "njs",
) -> dict[str, str]:
    """The gateway ConfigMap's files, as the pod mounts them (the metrics program is added by its own module). The
    Lua engine's image (OpenResty) has lua-nginx-module built in: nothing to load."""
    conf = nginx_conf(
        access,
        POD_PATHS,
        listen=f"0.0.0.0:{POD_LISTEN_PORT}",
        rpc_upstream=upstreams.rpc,
        grpc_upstream=upstreams.grpc,
        grpc_upstream_tls=upstreams.grpc_tls_name is not None,
        grpc_upstream_ca=f"{POD_TLS_DIR}/ca.crt",
        grpc_upstream_name=upstreams.grpc_tls_name,
        max_body_bytes=max_body_bytes,
        metrics_syslog=metrics_syslog,
        memory_limit_mib=memory_limit_mib,
        zcashd_upstream=upstreams.zcashd,
        history_cache=history_cache,
        engine=engine,
    )
    scripts = (
        lua_modules(POD_PATHS, zcashd_wallet=upstreams.zcashd_wallet, history_cache=history_cache)
        if engine == "lua"
        else {
            JS_MODULE: gateway_js(
                POD_PATHS, zcashd_wallet=upstreams.zcashd_wallet, history_cache=history_cache is not None
            ),
            gateway_cache.JS_MODULE: gateway_cache.cache_js(history_cache, POD_PATHS.upstream_auth_file, RELAY_PORT),
            JSON_TEXT_MODULE: json_text_js(),
            SPLICE_JS_MODULE: gateway_splice_js(),
        }
    )
    return {"nginx.conf": conf, **scripts, **users_files(access, probe_key_sha256=probe_key_sha256)}
