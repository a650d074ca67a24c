"""The access gateway's configuration (nginx with its njs module), rendered from an instance's access file: the
same text goes into the gateway's ConfigMap and into the live tests, which run it in Debian's nginx.

JSON-RPC side: nginx terminates TLS, limits bodies (413) and rates (429, per user or per anonymous address, a zone
per distinct limit), and hands each request to `gateway.js`, which checks the key against the table of SHA-256
hashes (401), every method of a request or batch against the caller's allowlist (a JSON-RPC error per refused
call), and forwards the rest to the node with the node's own credentials, never the caller's.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from zbi_infra.config.access import (
    NEVER_EXPOSED,
    NEVER_EXPOSED_PREFIXES,
    PROBE_JSON_RPC,
    PROBE_USER,
    Z_CHAIN_QUERIES,
    AccessFile,
    RateLimit,
    light_wallet_service,
)
from zbi_infra.config.instance import (
    GATEWAY_BODY_BUFFER_FACTOR,
    GATEWAY_MIN_ANONYMOUS_REQUESTS,
    GatewayConfig,
)
from zbi_infra.config.resources import memory_mib
from zbi_infra.config.zcashd_methods import gateway_refused
from zbi_infra.render.gateway_cache import JS_MODULE as CACHE_JS_MODULE
from zbi_infra.render.gateway_cache import LOG_FIELDS as CACHE_LOG_FIELDS

# The probe calls every 30 s per Prometheus replica: one a second with a burst covers them.
PROBE_RATE = RateLimit(requests_per_second=1, burst=10)
# Calls one JSON-RPC batch may carry when the access file says nothing (never above the profile's burst: a batch
# is charged one call each, so a larger one could never pass).
DEFAULT_MAX_BATCH = 100
# Requests one client address may have in progress at once, and anonymous requests in progress in all. A request
# whose body is being read holds up to its buffer (GATEWAY_BODY_BUFFER_FACTOR times the largest body): these bound
# that memory (per replica).
MAX_REQUESTS_PER_ADDRESS = 64
MAX_ANONYMOUS_REQUESTS = 256
# What anonymous bodies may hold at once, per replica: with a larger gateway.maxBodyKib, fewer anonymous requests
# are admitted at once (the pod's memory limit is 256 MiB by default; see docs/gateway-limits.md).
ANONYMOUS_BODY_BUDGET_BYTES = 64 * 1024 * 1024


def body_buffer_bytes(max_body_bytes: int) -> int:
    return GATEWAY_BODY_BUFFER_FACTOR * max_body_bytes


def anonymous_requests_cap(max_body_bytes: int) -> int:
    """Anonymous requests in progress at once, per replica: as many body buffers as the budget holds (128 at the
    default 256 KiB), never more than MAX_ANONYMOUS_REQUESTS nor fewer than 8."""
    budgeted = ANONYMOUS_BODY_BUDGET_BYTES // body_buffer_bytes(max_body_bytes)
    return max(GATEWAY_MIN_ANONYMOUS_REQUESTS, min(MAX_ANONYMOUS_REQUESTS, budgeted))


# Refused keys, per client address: a key guesser gets 429s, and cannot make nginx hash keys at will.
AUTH_FAILURE_RATE = RateLimit(requests_per_second=5, burst=20)
# A slow body or header is abandoned after this long without progress (nginx's default is 60 s).
BODY_TIMEOUT_SECONDS = 10
# Workers and connections per replica. Every open TLS connection holds tens of KiB whatever it sends (measured by
# benchmarks/gateway.py), so their number is what bounds a replica's memory; more load means more replicas (the
# HPA), not more workers. nginx's `auto` would start one worker per core of the node, not of the pod.
WORKER_PROCESSES = 2
WORKER_CONNECTIONS = 1024
# The largest node answer the gateway holds in memory: only batches with refused calls are rebuilt, and their
# answers buffered (everything else streams through). The largest real block (~1.9 MB raw, Zebra's test vector
# Testnet 141042) is ~3.9 MB as verbosity 0 or 2 JSON: two of them fit.
MAX_SPLICED_ANSWER_BYTES = 8 * 1024 * 1024
# The gateway container's memory limit when the instance says nothing: the configuration's own default.
DEFAULT_MEMORY_LIMIT_MIB = memory_mib(GatewayConfig().resources.limits()["memory"])
# A spliced batch holds the node's answer twice (the fetched body and njs's string of it): up to this much.
SPLICED_ANSWER_COST_BYTES = 2 * MAX_SPLICED_ANSWER_BYTES
# The share of the container's memory limit spliced answers may take at once; the rest is for bodies being read
# (ANONYMOUS_BODY_BUDGET_BYTES and per-caller caps), connections and nginx itself.
SPLICED_ANSWERS_SHARE = 4


def spliced_batches_cap(memory_limit_mib: int) -> int:
    """Batches with refused calls whose answers a replica reads at once (4 with the default 256 MiB limit): a
    quarter of the memory limit, at SPLICED_ANSWER_COST_BYTES each; at least one."""
    budget = memory_limit_mib * 1024 * 1024 // SPLICED_ANSWERS_SHARE
    return max(1, budget // SPLICED_ANSWER_COST_BYTES)


# Answer members withheld from callers: zebrad's getinfo `errors` is its last WARN/ERROR log line, verbatim
# (zebra-rpc/src/methods.rs at v6.3.0: `errors: last_error_log`).
WITHHELD = {"getinfo": ["errors"]}
# The node receives only the headers the gateway sets. nginx's gRPC proxy cannot forward an allowlist (nginx 1.22
# has no grpc_pass_request_headers; its gRPC module always passes the caller's headers): so the caller's headers are
# held to an allowlist instead. These are what gRPC itself sends (the HTTP/2 transport's, plus compression and the
# deadline), passed through; the blanked ones below are accepted but removed; any other metadata is refused
# (INVALID_ARGUMENT) before it could reach the light-wallet server.
GRPC_FORWARDED_HEADERS = (
    "host",
    "content-type",
    "content-length",
    "te",
    "user-agent",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-accept-encoding",
    # gRPC libraries add these themselves: a retry attempt carries its count (the retry design, gRFC A6), and
    # OpenCensus-instrumented clients their trace and tags; refusing them would fail a wallet's retried call.
    "grpc-previous-rpc-attempts",
    "grpc-trace-bin",
    "grpc-tags-bin",
)
GRPC_BLANKED_HEADERS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "via",
)
JS_MODULE = "gateway.js"
# The spliced path's njs module (batches with refused calls, answers with withheld members): imported only by the
# named location gateway.js redirects those to, so no other request runs its top level.
SPLICE_JS_MODULE = "gateway_splice.js"
# The JSON text scanner gateway.js, gateway_splice.js and gateway_cache.js import (a file of the ConfigMap, as the
# modules are).
JSON_TEXT_MODULE = "json_text.js"
# The user table, one file per key in the configuration directory (the ConfigMap's keys): gateway.js reads only the
# caller's own entry per request. Anonymous callers' profile, when there is one, is its own file.
KEY_FILE_PREFIX = "key-"
ANONYMOUS_FILE = "anonymous.json"
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
    # Last: what the history cache did (zbi_infra.render.gateway_cache).
    **CACHE_LOG_FIELDS,
}


def bucket_name(limit: RateLimit) -> str:
    return f"r{limit.requests_per_second}b{limit.effective_burst()}"


def max_batch(limit: RateLimit) -> int:
    return min(limit.max_batch or DEFAULT_MAX_BATCH, limit.effective_burst())


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
            "zcashdRpc": [],
            "bucket": bucket_name(PROBE_RATE),
            "maxBatch": 1,
        }
    for user in access.users:
        json_rpc, grpc = access.allowed(user)
        users[user.key_sha256] = {
            "name": user.name,
            "expires": user.expires.isoformat() if user.expires else None,
            "jsonRpc": json_rpc,
            "grpc": grpc,
            "zcashdRpc": access.allowed_zcashd(user),
            "bucket": bucket_name(user.rate_limit),
            "maxBatch": max_batch(user.rate_limit),
        }
    anonymous = None
    if access.anonymous is not None:
        json_rpc, grpc = access.allowed(None)
        limit = access.anonymous.rate_limit
        anonymous = {
            "jsonRpc": json_rpc,
            "grpc": grpc,
            "zcashdRpc": access.allowed_zcashd(None),
            "bucket": bucket_name(limit),
            "maxBatch": max_batch(limit),
        }
    return {"users": users, "anonymous": anonymous}


def user_files(table: dict[str, Any]) -> dict[str, str]:
    """The user table (`users_table`) as the files gateway.js reads: `key-<sha256>.json` per key, and
    `anonymous.json` when anonymous callers have a profile."""
    files = {
        f"{KEY_FILE_PREFIX}{digest}.json": json.dumps(entry, sort_keys=True) for digest, entry in table["users"].items()
    }
    if table["anonymous"] is not None:
        files[ANONYMOUS_FILE] = json.dumps(table["anonymous"], sort_keys=True)
    return files


def is_user_file(name: str) -> bool:
    """Whether a configuration file is part of the user table (re-read per request, so never a reason to roll)."""
    return name == ANONYMOUS_FILE or (name.startswith(KEY_FILE_PREFIX) and name.endswith(".json"))


def users_files(access: AccessFile, *, probe_key_sha256: str | None = None) -> dict[str, str]:
    """The access file's user table as the gateway's configuration files."""
    return user_files(users_table(access, probe_key_sha256=probe_key_sha256))


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

    @property
    def upstream_auth_include(self) -> str:
        """The node's credentials as the nginx directive that sends them (`upstream_auth_directive`), beside
        `upstream_auth_file` in the same Secret: read once at start, so no request reads a file for them."""
        return f"{self.upstream_auth_file}{UPSTREAM_AUTH_INCLUDE_SUFFIX}"


UPSTREAM_AUTH_INCLUDE_SUFFIX = ".conf"


def upstream_auth_directive(credentials: str) -> str:
    """`user:password` of the node as the header nginx's proxy sets (basic auth)."""
    encoded = base64.b64encode(credentials.strip().encode()).decode()
    return f'proxy_set_header Authorization "Basic {encoded}";\n'


def proxy_to_node(indent: str, upstream_auth_include: str) -> str:
    """The node gets the checked body, its own credentials and no header of the caller's."""
    return (
        f"{indent}proxy_http_version 1.1;\n"
        f"{indent}proxy_pass_request_headers off;\n"
        f'{indent}proxy_set_header Connection "";\n'
        f"{indent}include {upstream_auth_include};\n"
        f"{indent}proxy_set_header Content-Type application/json;\n"
        f"{indent}proxy_connect_timeout 2s;\n"
        f"{indent}proxy_read_timeout 60s;\n"
    )


# The loopback relay through which njs reads the node's answers (nginx.conf's internal server).
RELAY_PORT = 8444


# Where the gateway serves the zcashd sidecar's JSON-RPC (node.zcashdCompat); the node's is at every other path.
ZCASHD_PATH = "/zcashd"


def switch_cases(names: list[str]) -> str:
    """A set of names as gateway.js writes it: a switch's cases answering true (none when the set is empty)."""
    if not names:
        return ""
    cases = [f"case {json.dumps(name)}:" for name in names]
    lines = [" ".join(cases[i : i + 4]) for i in range(0, len(cases), 4)]
    return "\n    ".join(lines) + "\n        return true;"


def prefix_test(prefixes: list[str]) -> str:
    """gateway.js's test of `method` against a list of prefixes, as one expression."""
    return " || ".join(f"method.startsWith({json.dumps(prefix)})" for prefix in prefixes) or "false"


# gateway.js's stand-in for gateway_cache.js on an instance without the cache, which serves nothing, as the module
# does when disabled, without running that module's top level for every request.
NO_HISTORY_CACHE = "const history = null;"


def json_text_js() -> str:
    """json_text.js: JSON values found as spans of text, with no memory per character (njs frees nothing before a
    request ends). Importing it costs a request about 3,100 instructions (benchmarks/gateway_instructions.py), the
    price of one scanner instead of two."""
    return resources.files("zbi_infra.render").joinpath(JSON_TEXT_MODULE).read_text()


def gateway_js(paths: GatewayPaths, *, zcashd_wallet: bool = False, history_cache: bool = True) -> str:
    """The njs module. `zcashd_wallet`: the instance's zcashd runs its wallet, so its wallet methods may pass (to the
    users whose own list names them); otherwise the module refuses them whatever the user table says.
    `history_cache`: the instance caches (gateway_cache.js is imported); without, a stand-in serves nothing."""
    template = resources.files("zbi_infra.render").joinpath(JS_MODULE).read_text()
    substitutions = {
        "__TABLE_DIR__": paths.config_dir,
        "__KEY_FILE_PREFIX__": KEY_FILE_PREFIX,
        "__ANONYMOUS_FILE__": ANONYMOUS_FILE,
        "__UPSTREAM_AUTH__": paths.upstream_auth_file,
        "__HISTORY__": f"import history from '{CACHE_JS_MODULE}';" if history_cache else NO_HISTORY_CACHE,
        "__NEVER__": switch_cases(sorted(NEVER_EXPOSED)),
        "__NEVER_PREFIXES__": prefix_test(list(NEVER_EXPOSED_PREFIXES)),
        "__PREFIX_EXCEPTIONS__": switch_cases(sorted(Z_CHAIN_QUERIES)),
        "__MAX_BATCH__": str(DEFAULT_MAX_BATCH),
        "__WITHHELD__": "\n    ".join(
            f"case {json.dumps(method)}:\n        return {json.dumps(fields)};"
            for method, fields in sorted(WITHHELD.items())
        ),
        "__GRPC_HEADERS__": switch_cases(sorted({*GRPC_FORWARDED_HEADERS, *GRPC_BLANKED_HEADERS})),
        "__ZCASHD_NEVER__": switch_cases(gateway_refused(zcashd_wallet)),
        "__ZCASHD_PATH__": ZCASHD_PATH,
        "__GRPC_SERVICE__": light_wallet_service()[0],
    }
    for placeholder, value in substitutions.items():
        template = template.replace(placeholder, value)
    return template


def gateway_splice_js(*, relay_port: int = RELAY_PORT) -> str:
    """The spliced path's njs module: forwards a checked batch's allowed calls (or a call whose answer has withheld
    members) through the loopback relay and splices the node's answer; gateway.js hands it the checked calls."""
    template = resources.files("zbi_infra.render").joinpath(SPLICE_JS_MODULE).read_text()
    substitutions = {
        "__MAX_ANSWER__": str(MAX_SPLICED_ANSWER_BYTES),
        "__RELAY__": f"127.0.0.1:{relay_port}",
        "__ZCASHD_PATH__": ZCASHD_PATH,
    }
    for placeholder, value in substitutions.items():
        template = template.replace(placeholder, value)
    return template


@dataclass(frozen=True)
class GatewayUpstreams:
    """Where one instance's gateway forwards: the full node's RPC and, when there is one, the light-wallet gRPC."""

    rpc: str
    grpc: str | None = None
    # The light-wallet server's TLS name (a DNS name of its certificate) when it serves TLS; verified with the CA.
    grpc_tls_name: str | None = None
    # The zcashd sidecar's JSON-RPC (`host:port`), served at ZCASHD_PATH, and whether it runs its wallet.
    zcashd: str | None = None
    zcashd_wallet: bool = False


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
