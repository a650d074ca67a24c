"""The RPC guard: nginx in the full node's pod, in front of zebrad's (or zakurad's) JSON-RPC.

zebrad has no user/password RPC authentication (zBI turns its cookie off: the cookie is written inside the node's pod,
where callers cannot read it). So zebrad listens on 127.0.0.1 only, and this sidecar listens on the port the RPC
Service targets and forwards only requests carrying the instance's RPC credential (HTTP Basic, the user and password
of the instance's `rpc-credentials` Secret, which lightwalletd, Zaino and the gateway already send). Anything else is
answered 401 with a JSON-RPC error, before it reaches the node. Isolation of the node's RPC then no longer rests on the
NetworkPolicy alone.

The expected `Authorization` value is not in this file: it is a one-line nginx include (`authorization_include`)
kept in the Secret and mounted read-only, so the ConfigMap and the plan stay free of it. A missing include stops
nginx at start (the pod is never ready), and an empty header is refused before any comparison, so the guard fails
closed. `if` compares strings exactly (a `map` would compare case-insensitively, halving the base64's entropy).
"""

from __future__ import annotations

import base64
import json

from zbi_infra.render.nginx_process import http_writable_paths, main_context

# zebrad's RPC inside the pod: loopback only, away from the health (8080), metrics (9999), zcashd-compat RPC (8252)
# and regtest forwarder (28344+) ports.
NODE_LOOPBACK_RPC_PORT = 28232
# A Zcash transaction is at most a block (2,000,000 bytes), 4 MB as hex in `sendrawtransaction`; room for batches.
MAX_REQUEST_BODY_BYTES = 10 * 1024 * 1024
# Connections kept open to zebrad per worker: light-wallet servers and the gateway reuse theirs.
UPSTREAM_KEEPALIVE = 32
# A slow call (a large getblock on a busy node) is still answered; a stuck one does not hold a connection forever.
UPSTREAM_READ_TIMEOUT_SECONDS = 300
AUTHORIZATION_VARIABLE = "$zbi_rpc_expected_authorization"
UNAUTHORIZED_BODY = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": None,
        "error": {
            "code": -32600,
            "message": "unauthorized: this node RPC requires the instance RPC credential (HTTP Basic)",
        },
    },
    separators=(",", ":"),
)
# The body sits in a single-quoted nginx string.
assert "'" not in UNAUTHORIZED_BODY and "\\" not in UNAUTHORIZED_BODY


def authorization_include(user: str, password: str) -> str:
    """The Secret's file: the one `Authorization` header value the guard lets through."""
    if '"' in user or ":" in user:
        raise ValueError("the RPC user may not contain '\"' or ':'")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    # Base64 has no quote, backslash or `$`: the value cannot break out of the nginx string.
    return f'set {AUTHORIZATION_VARIABLE} "Basic {token}";\n'


def rpc_guard_nginx_conf(
    *,
    listen: str,
    upstream: str,
    authorization_file: str,
    temp_dir: str,
    max_body_bytes: int = MAX_REQUEST_BODY_BYTES,
    user: str | None = None,
) -> str:
    """nginx.conf for the guard: `listen` is where callers connect (the pod's RPC port), `upstream` zebrad's
    loopback address, `authorization_file` the Secret's include."""
    return f"""# Rendered by zbi_infra.render.rpc_guard: do not edit.
{main_context(user=user, workers=1, worker_connections=1024, temp_dir=temp_dir)}

http {{
{http_writable_paths(temp_dir)}
    # Requests carry the credential: none is logged. Errors still go to stderr.
    access_log off;
    default_type application/json;

    upstream node_rpc {{
        server {upstream};
        keepalive {UPSTREAM_KEEPALIVE};
    }}

    server {{
        listen {listen};
        client_max_body_size {max_body_bytes};
        keepalive_timeout 75s;
        keepalive_requests 10000;

        location / {{
            include {authorization_file};
            if ($http_authorization = "") {{
                return 401 '{UNAUTHORIZED_BODY}';
            }}
            if ($http_authorization != {AUTHORIZATION_VARIABLE}) {{
                return 401 '{UNAUTHORIZED_BODY}';
            }}
            proxy_pass http://node_rpc;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # zebrad does not read it (its cookie is off): the credential stops here.
            proxy_set_header Authorization "";
            # Both ways stream as written: a multi-megabyte getblock or sendrawtransaction is never held whole.
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout {UPSTREAM_READ_TIMEOUT_SECONDS}s;
            proxy_send_timeout {UPSTREAM_READ_TIMEOUT_SECONDS}s;
        }}
    }}
}}
"""
