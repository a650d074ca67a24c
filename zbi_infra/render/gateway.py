"""The access gateway's configuration (nginx with its njs module), rendered from an instance's access file: the
same text goes into the gateway's ConfigMap and into the live tests, which run it in Debian's nginx.

JSON-RPC side: nginx terminates TLS, limits bodies (413) and rates (429, per user or per anonymous address, a zone
per distinct limit), and hands each request to `gateway.js`, which checks the key against the table of SHA-256
hashes (401), every method of a request or batch against the caller's allowlist (a JSON-RPC error per refused
call), and forwards the rest to the node with the node's own credentials, never the caller's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from zbi_infra.config.access import (
    NEVER_EXPOSED,
    NEVER_EXPOSED_PREFIXES,
    PROBE_JSON_RPC,
    PROBE_USER,
    AccessFile,
    RateLimit,
    light_wallet_service,
)

# The probe calls every 30 s per Prometheus replica: one a second with a burst covers them.
PROBE_RATE = RateLimit(requests_per_second=1, burst=10)
JS_MODULE = "gateway.js"
USERS_FILE = "users.json"
SYSLOG_TAG = "zbi"
# One JSON object per request. The metrics program (zbi_infra.render.gateway_metrics) reads these fields in this
# order; `method` is a label-safe name (allowlisted, or "(refused)" / "(batch)"), `methods` what the client asked.
ACCESS_LOG_FIELDS = {
    "time": "$time_iso8601",
    "user": "$zbi_user",
    "api": "$zbi_api",
    "method": "$zbi_method",
    "code": "$zbi_code",
    "status": "$status",
    "seconds": "$request_time",
    "methods": "$zbi_methods",
    "path": "$uri",
    "client": "$remote_addr",
}


def bucket_name(limit: RateLimit) -> str:
    return f"r{limit.requests_per_second}b{limit.effective_burst()}"


def users_table(access: AccessFile, *, probe_key_sha256: str | None = None) -> dict[str, Any]:
    """What the gateway reads at request time: users by key hash, the anonymous profile, each with its rate bucket;
    with `probe_key_sha256`, the monitoring probe's user (PROBE_JSON_RPC only, whatever the file exposes)."""
    users = {}
    if probe_key_sha256 is not None:
        users[probe_key_sha256] = {
            "name": PROBE_USER,
            "expires": None,
            "jsonRpc": list(PROBE_JSON_RPC),
            "grpc": [],
            "bucket": bucket_name(PROBE_RATE),
        }
    for user in access.users:
        json_rpc, grpc = access.allowed(user)
        users[user.key_sha256] = {
            "name": user.name,
            "expires": user.expires.isoformat() if user.expires else None,
            "jsonRpc": json_rpc,
            "grpc": grpc,
            "bucket": bucket_name(user.rate_limit),
        }
    anonymous = None
    if access.anonymous is not None:
        json_rpc, grpc = access.allowed(None)
        anonymous = {"jsonRpc": json_rpc, "grpc": grpc, "bucket": bucket_name(access.anonymous.rate_limit)}
    return {"users": users, "anonymous": anonymous}


def users_json(access: AccessFile, *, probe_key_sha256: str | None = None) -> str:
    """The user table as the gateway's `users.json` holds it."""
    return json.dumps(users_table(access, probe_key_sha256=probe_key_sha256), indent=1, sort_keys=True)


def rate_buckets(access: AccessFile) -> dict[str, RateLimit]:
    limits = [PROBE_RATE, *(user.rate_limit for user in access.users)]
    if access.anonymous is not None:
        limits.append(access.anonymous.rate_limit)
    return {bucket_name(limit): limit for limit in limits}


@dataclass(frozen=True)
class GatewayPaths:
    """Where the gateway finds its files (in the pod: the ConfigMap's and the Secret's mounts)."""

    config_dir: str
    upstream_auth_file: str
    tls_certificate: str | None = None
    tls_key: str | None = None


def gateway_js(paths: GatewayPaths) -> str:
    template = resources.files("zbi_infra.render").joinpath(JS_MODULE).read_text()
    substitutions = {
        "__TABLE__": f"{paths.config_dir}/{USERS_FILE}",
        "__UPSTREAM_AUTH__": paths.upstream_auth_file,
        "__NEVER__": json.dumps(sorted(NEVER_EXPOSED)),
        "__NEVER_PREFIXES__": json.dumps(list(NEVER_EXPOSED_PREFIXES)),
    }
    for placeholder, value in substitutions.items():
        template = template.replace(placeholder, value)
    return template


def nginx_conf(
    access: AccessFile,
    paths: GatewayPaths,
    *,
    listen: str,
    rpc_upstream: str,
    grpc_upstream: str | None = None,
    grpc_upstream_tls: bool = False,
    max_body_bytes: int = 64 * 1024,
    js_module_path: str = "/usr/lib/nginx/modules/ngx_http_js_module.so",
    temp_dir: str = "/tmp",
    user: str | None = None,
    metrics_syslog: str | None = None,
    grpc_upstream_ca: str | None = None,
    grpc_upstream_name: str | None = None,
) -> str:
    """nginx.conf for one instance's gateway. `listen` is `host:port`; TLS (and HTTP/2 for gRPC) when `paths` names a
    certificate; the light-wallet server's gRPC service is proxied when `grpc_upstream` is given, its certificate
    verified against `grpc_upstream_ca` for `grpc_upstream_name` when both are given. `metrics_syslog` (`host:port`)
    sends a copy of the access log to the metrics sidecar."""
    service, _ = light_wallet_service()
    buckets = rate_buckets(access)
    tls = paths.tls_certificate is not None and paths.tls_key is not None
    zones = "\n".join(
        f'    map $zbi_bucket $zbi_rate_{name} {{ {name} $zbi_rate_key; default ""; }}\n'
        f"    limit_req_zone $zbi_rate_{name} zone={name}:10m rate={limit.requests_per_second}r/s;"
        for name, limit in sorted(buckets.items())
    )
    limits = "\n".join(
        f"            limit_req zone={name} burst={limit.effective_burst()} nodelay;"
        for name, limit in sorted(buckets.items())
    )
    tls_lines = (
        f"        ssl_certificate {paths.tls_certificate};\n"
        f"        ssl_certificate_key {paths.tls_key};\n"
        "        ssl_protocols TLSv1.2 TLSv1.3;\n"
        if tls
        else ""
    )
    verify = (grpc_upstream_ca, grpc_upstream_name) if grpc_upstream_ca and grpc_upstream_name else None
    grpc = _grpc_locations(grpc_upstream_tls, limits, verify) if grpc_upstream else ""
    # Kept-alive HTTP/2 connections to the light-wallet server: without them every call would open a connection
    # (and, upstream TLS on, a handshake).
    grpc_upstream_block = (
        f"\n    upstream zbi_grpc {{\n        server {grpc_upstream};\n        keepalive 32;\n    }}\n"
        if grpc_upstream
        else ""
    )
    log_format = json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":"))
    metrics_log = (
        f"    # A copy for the metrics sidecar (mtail), over loopback UDP: nginx never blocks on it.\n"
        # mtail reads datagrams as lines: each message ends with the newline syslog does not add.
        f"    log_format zbi_metrics escape=json '{log_format}\\n';\n"
        f"    access_log syslog:server={metrics_syslog},tag={SYSLOG_TAG},nohostname zbi_metrics;\n"
        if metrics_syslog
        else ""
    )
    return f"""# Rendered by zbi_infra.render.gateway: do not edit.
load_module {js_module_path};
{f"user {user};" if user else ""}
worker_processes auto;
pid {temp_dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}

http {{
    client_body_temp_path {temp_dir}/body;
    proxy_temp_path {temp_dir}/proxy;
    fastcgi_temp_path {temp_dir}/fastcgi;
    uwsgi_temp_path {temp_dir}/uwsgi;
    scgi_temp_path {temp_dir}/scgi;
    server_tokens off;

    js_path {paths.config_dir};
    js_import gateway from {JS_MODULE};
    js_set $zbi_rate_key gateway.rateKey;
    js_set $zbi_bucket gateway.rateBucket;
    js_set $zbi_upstream_auth gateway.upstreamAuth;
    js_set $zbi_grpc_verdict gateway.grpcVerdict;
    js_set $zbi_user gateway.userName;
    js_var $zbi_methods "";
    js_var $zbi_method "-";
    js_var $zbi_identity;

{zones}
    limit_req_status 429;

    # The user's name, never the key: the Authorization header is not logged.
    log_format zbi escape=json '{log_format}';
    access_log /dev/stdout zbi;
{metrics_log}
    map $uri $zbi_api {{
        ~^/{re.escape(service)}/ grpc;
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
{grpc_upstream_block}
    server {{
        listen {listen}{" ssl http2" if tls else ""};
{tls_lines}        # Bodies stay in memory (njs reads them there) and are refused above the limit with 413.
        client_max_body_size {max_body_bytes};
        client_body_buffer_size {max_body_bytes};

        # Refusals nginx itself makes still answer in JSON-RPC's shape.
        error_page 413 = @too_large;
        error_page 429 = @rate_limited;
        location @too_large {{
            default_type application/json;
            return 413 '{{"result":null,"error":{{"code":-32600,"message":"request body too large"}},"id":null}}';
        }}
        location @rate_limited {{
            default_type application/json;
            return 429 '{{"result":null,"error":{{"code":-32005,"message":"rate limit reached"}},"id":null}}';
        }}

        location = /healthz {{
            access_log off;
            return 200 "ok\\n";
        }}

        location / {{
{limits}
            js_content gateway.jsonRpc;
        }}

{grpc}
        location = /_zbi_rpc_upstream {{
            internal;
            proxy_pass http://zbi_rpc/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The node's own credentials replace the caller's.
            proxy_set_header Authorization $zbi_upstream_auth;
            proxy_set_header Content-Type application/json;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


def _grpc_locations(upstream_tls: bool, limits: str, verify: tuple[str, str] | None) -> str:
    """The light-wallet service, method by method: refusals are gRPC statuses (a trailers-only answer), never HTTP
    error pages; allowed calls, server streams included, pass through unbuffered."""
    service, _ = light_wallet_service()

    def status(name: str, code: int, message: str) -> str:
        return (
            f"        location @{name} {{\n"
            "            default_type application/grpc;\n"
            f"            add_header grpc-status {code} always;\n"
            f'            add_header grpc-message "{message}" always;\n'
            "            return 204;\n"
            "        }\n"
        )

    return (
        f"        location /{service}/ {{\n"
        "            error_page 401 = @grpc_unauthenticated;\n"
        "            error_page 403 = @grpc_denied;\n"
        "            error_page 413 = @grpc_too_large;\n"
        "            error_page 429 = @grpc_rate_limited;\n"
        "            error_page 502 503 504 = @grpc_unavailable;\n"
        "            if ($zbi_grpc_verdict = unauthenticated) { return 401; }\n"
        "            if ($zbi_grpc_verdict = denied) { return 403; }\n"
        f"{limits}\n"
        "            # The caller's key stays here.\n"
        '            grpc_set_header Authorization "";\n'
        "            grpc_read_timeout 1h;\n"
        "            grpc_send_timeout 1h;\n"
        + (
            f"            grpc_ssl_trusted_certificate {verify[0]};\n"
            f"            grpc_ssl_name {verify[1]};\n"
            "            grpc_ssl_verify on;\n"
            if verify and upstream_tls
            else ""
        )
        + f"            grpc_pass {'grpcs' if upstream_tls else 'grpc'}://zbi_grpc;\n"
        "        }\n"
        + status("grpc_unauthenticated", 16, "a valid key is required: authorization: Bearer <key>")
        + status("grpc_denied", 7, "this method is not allowed for this key")
        + status("grpc_too_large", 8, "request too large")
        + status("grpc_rate_limited", 8, "rate limit reached")
        + status("grpc_unavailable", 14, "the light-wallet server is unavailable")
    )


@dataclass(frozen=True)
class GatewayUpstreams:
    """Where one instance's gateway forwards: the full node's RPC and, when there is one, the light-wallet gRPC."""

    rpc: str
    grpc: str | None = None
    # The light-wallet server's TLS name (a DNS name of its certificate) when it serves TLS; verified with the CA.
    grpc_tls_name: str | None = None


# In the pod: the ConfigMap, the node-credentials Secret and the TLS Secret, each mounted read-only.
POD_CONFIG_DIR = "/etc/zbi-gateway"
POD_UPSTREAM_DIR = "/var/run/zbi-gateway/upstream"
POD_TLS_DIR = "/var/run/zbi-gateway/tls"
UPSTREAM_AUTH_KEY = "upstream-auth"
POD_LISTEN_PORT = 8443
POD_PATHS = GatewayPaths(
    config_dir=POD_CONFIG_DIR,
    upstream_auth_file=f"{POD_UPSTREAM_DIR}/{UPSTREAM_AUTH_KEY}",
    tls_certificate=f"{POD_TLS_DIR}/tls.crt",
    tls_key=f"{POD_TLS_DIR}/tls.key",
)


def pod_files(
    access: AccessFile,
    upstreams: GatewayUpstreams,
    *,
    max_body_bytes: int,
    metrics_syslog: str,
    probe_key_sha256: str | None = None,
) -> dict[str, str]:
    """The gateway ConfigMap's files, as the pod mounts them (the metrics program is added by its own module)."""
    return {
        "nginx.conf": nginx_conf(
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
        ),
        JS_MODULE: gateway_js(POD_PATHS),
        USERS_FILE: users_json(access, probe_key_sha256=probe_key_sha256),
    }
