"""The access gateway's configuration (nginx with its njs module), rendered from an instance's access file: the
same text goes into the gateway's ConfigMap and into the live tests, which run it in Debian's nginx.

JSON-RPC side: nginx terminates TLS, limits bodies (413) and rates (429, per user or per anonymous address, a zone
per distinct limit), and hands each request to `gateway.js`, which checks the key against the table of SHA-256
hashes (401), every method of a request or batch against the caller's allowlist (a JSON-RPC error per refused
call), and forwards the rest to the node with the node's own credentials, never the caller's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from zbi_infra.config.access import (
    NEVER_EXPOSED,
    NEVER_EXPOSED_PREFIXES,
    AccessFile,
    RateLimit,
    light_wallet_service,
)

JS_MODULE = "gateway.js"
USERS_FILE = "users.json"


def bucket_name(limit: RateLimit) -> str:
    return f"r{limit.requests_per_second}b{limit.effective_burst()}"


def users_table(access: AccessFile) -> dict[str, Any]:
    """What the gateway reads at request time: users by key hash, the anonymous profile, each with its rate bucket."""
    users = {}
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


def rate_buckets(access: AccessFile) -> dict[str, RateLimit]:
    limits = [user.rate_limit for user in access.users]
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
) -> str:
    """nginx.conf for one instance's gateway. `listen` is `host:port`; TLS (and HTTP/2 for gRPC) when `paths` names a
    certificate; the light-wallet server's gRPC service is proxied when `grpc_upstream` is given."""
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
    grpc = _grpc_locations(grpc_upstream, grpc_upstream_tls, limits) if grpc_upstream else ""
    log_format = json.dumps(
        {
            "time": "$time_iso8601",
            "user": "$zbi_user",
            "path": "$uri",
            "methods": "$zbi_methods",
            "status": "$status",
            "seconds": "$request_time",
            "client": "$remote_addr",
        }
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
    js_var $zbi_identity;

{zones}
    limit_req_status 429;

    # The user's name, never the key: the Authorization header is not logged.
    log_format zbi escape=json '{log_format}';
    access_log /dev/stdout zbi;

    upstream zbi_rpc {{
        server {rpc_upstream};
        keepalive 32;
    }}

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


def _grpc_locations(upstream: str, upstream_tls: bool, limits: str) -> str:
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
        f"            grpc_pass {'grpcs' if upstream_tls else 'grpc'}://{upstream};\n"
        "        }\n"
        + status("grpc_unauthenticated", 16, "a valid key is required: authorization: Bearer <key>")
        + status("grpc_denied", 7, "this method is not allowed for this key")
        + status("grpc_too_large", 8, "request too large")
        + status("grpc_rate_limited", 8, "rate limit reached")
        + status("grpc_unavailable", 14, "the light-wallet server is unavailable")
    )
