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

from zbi_infra.config.access import AccessFile, RateLimit

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
    return template.replace("__TABLE__", f"{paths.config_dir}/{USERS_FILE}").replace(
        "__UPSTREAM_AUTH__", paths.upstream_auth_file
    )


def nginx_conf(
    access: AccessFile,
    paths: GatewayPaths,
    *,
    listen: str,
    rpc_upstream: str,
    max_body_bytes: int = 64 * 1024,
    js_module_path: str = "/usr/lib/nginx/modules/ngx_http_js_module.so",
    temp_dir: str = "/tmp",
    user: str | None = None,
) -> str:
    """nginx.conf for one instance's gateway. `listen` is `host:port`; TLS when `paths` names a certificate."""
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
    log_format = json.dumps(
        {
            "time": "$time_iso8601",
            "user": "$zbi_user",
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
    js_set $zbi_user gateway.userName;
    js_var $zbi_methods "";

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
        listen {listen}{" ssl" if tls else ""};
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
