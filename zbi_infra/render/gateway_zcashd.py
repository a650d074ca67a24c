"""The gateway's zcashd route in nginx.conf: the zcashd sidecar's JSON-RPC (Zakura's zcashd-compatibility mode) at
ZCASHD_PATH, checked by the same njs handler as the node's, against the caller's zcashd list
(zbi_infra.config.zcashd_methods), and forwarded to the sidecar with the node's credentials. Without a sidecar the
path answers 404, so a client that expects zcashd never reaches zebrad's (or zakurad's) RPC by mistake."""

from __future__ import annotations

from zbi_infra.render.gateway import ZCASHD_PATH

UPSTREAM = "zbi_zcashd"
NO_ZCASHD = '{"result":null,"error":{"code":-32601,"message":"this instance has no zcashd"},"id":null}'


def upstream_block(zcashd_upstream: str | None) -> str:
    if zcashd_upstream is None:
        return ""
    return f"\n    upstream {UPSTREAM} {{\n        server {zcashd_upstream};\n        keepalive 16;\n    }}\n"


def locations(zcashd_upstream: str | None, *, who: str, checks: str, content: str, proxy_to_node: str) -> str:
    """The public location and its proxy. `who`: the engine's lines that identify the caller (its answer without a
    sidecar is logged under the caller's name, as njs computes it when the log reads it); `checks`: the key check,
    concurrency and rate limits of `location /`; `content`: its JSON-RPC handler (the engine's)."""
    if zcashd_upstream is None:
        return (
            f"        location = {ZCASHD_PATH} {{\n{who}"
            "            default_type application/json;\n"
            f"            return 404 '{NO_ZCASHD}';\n"
            "        }\n"
        )
    return (
        f"        location = {ZCASHD_PATH} {{\n{checks}\n{content}        }}\n"
        "        location @zbi_zcashd {\n"
        "            rewrite ^ /? break;\n"
        f"            proxy_pass http://{UPSTREAM};\n"
        f"{proxy_to_node}"
        "            error_page 502 504 = @node_unavailable;\n"
        "        }\n"
    )


def relay_locations(zcashd_upstream: str | None, *, relay: str, spliced_cap: int) -> str:
    """The loopback relay's zcashd paths (njs reads the sidecar's answers there), as the node's."""
    if zcashd_upstream is None:
        return ""
    relay = relay.replace("http://zbi_rpc;", f"http://{UPSTREAM};")
    return (
        f"        location = {ZCASHD_PATH}/ {{\n{relay}        }}\n"
        f"        location = {ZCASHD_PATH}/batch {{\n"
        f"            limit_conn zbi_spliced {spliced_cap};\n{relay}        }}\n"
    )
