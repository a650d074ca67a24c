"""The gateway's gRPC locations in nginx.conf: the light-wallet service, method by method, and the gRPC services
every gRPC tool asks for that it does not serve."""

from __future__ import annotations

import re

from zbi_infra.config.access import light_wallet_service
from zbi_infra.render.gateway import AUTH_FAILURE_RATE, GRPC_BLANKED_HEADERS

# gRPC services every gRPC tool asks for that the light-wallet service is not: answered UNIMPLEMENTED here rather
# than forwarded (a reflection answer would list the light-wallet server's services, allowed or not).
UNSERVED_GRPC = (
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
    "grpc.health.v1.Health",
)


def grpc_locations(
    upstream_tls: bool, limits: str, verify: tuple[str, str] | None, who: str = "", who_charged: str = ""
) -> str:
    """The light-wallet service, method by method: refusals are gRPC statuses (a trailers-only answer), never HTTP
    error pages; allowed calls, server streams included, pass through unbuffered. `who`: the engine's lines that
    identify the caller in a location (the Lua engine's, which sets $zbi_verdict; njs computes $zbi_who when read);
    `who_charged` theirs in the service's location, which also charge the caller's rate bucket (the Lua engine's)."""
    service, _ = light_wallet_service()

    def status(name: str, code: int, message: str, http_status: int = 204, identify: str = "") -> str:
        return (
            f"        location @{name} {{\n{identify}"
            "            default_type application/grpc;\n"
            f"            add_header grpc-status {code} always;\n"
            f'            add_header grpc-message "{message}" always;\n'
            f"            return {http_status};\n"
            "        }\n"
        )

    blanked = "".join(f'            grpc_set_header {name} "";\n' for name in GRPC_BLANKED_HEADERS)
    unserved = "|".join(re.escape(name) for name in UNSERVED_GRPC)
    return (
        f"        location /{service}/ {{\n" + who_charged + "            error_page 403 = @grpc_denied;\n"
        "            error_page 405 = @grpc_not_grpc;\n"
        "            error_page 413 = @grpc_too_large;\n"
        "            error_page 429 = @grpc_rate_limited;\n"
        "            error_page 502 503 504 = @grpc_unavailable;\n"
        "            if ($request_method != POST) { return 405; }\n"
        "            if ($zbi_verdict = unauthenticated) { rewrite ^ /_zbi_grpc_unauthenticated last; }\n"
        "            if ($zbi_verdict = denied) { return 403; }\n"
        "            error_page 400 = @grpc_metadata;\n"
        "            if ($zbi_verdict = metadata) { return 400; }\n"
        f"{limits}\n"
        "            # The caller's key, cookies and proxy headers stay here; other metadata is refused above.\n"
        f"{blanked}"
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
        f"        location ~ ^/({unserved})/ {{\n" + who + "            default_type application/grpc;\n"
        "            add_header grpc-status 12 always;\n"
        '            add_header grpc-message "not served by this gateway" always;\n'
        "            return 204;\n"
        "        }\n" + "        location = /_zbi_grpc_unauthenticated {\n"
        "            internal;\n"
        f"            limit_req zone=zbi_auth_failures burst={AUTH_FAILURE_RATE.effective_burst()} nodelay;\n"
        "            error_page 403 = @grpc_unauthenticated;\n"
        "            error_page 429 = @grpc_rate_limited;\n"
        "            deny all;\n"
        "        }\n"
        + status("grpc_unauthenticated", 16, "a valid key is required: authorization: Bearer <key>")
        + status("grpc_denied", 7, "this method is not allowed for this key")
        + status("grpc_metadata", 3, "metadata outside the gateway's allowlist (custom headers are not forwarded)")
        + status("grpc_not_grpc", 12, "gRPC calls are POSTs", http_status=405)
        # A Content-Length over the limit is refused before the service's location identified the caller.
        + status("grpc_too_large", 8, "request too large", identify=who)
        + status("grpc_rate_limited", 8, "rate limit reached")
        + status("grpc_unavailable", 14, "the light-wallet server is unavailable")
    )
