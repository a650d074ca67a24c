"""The gateway's metrics: an mtail program that turns the access log nginx sends it (syslog over loopback UDP)
into Prometheus counters of requests by user, API, method and outcome, and a latency histogram per API.

nginx has no Prometheus endpoint of its own (its stub_status counts connections, not users or methods), and njs
0.7 keeps no state between requests; reading the access log keeps the request path free of any metrics work.
"""

from __future__ import annotations

from zbi_infra.render import gateway_cache
from zbi_infra.render.gateway import ACCESS_LOG_FIELDS

PROGRAM_FILE = "gateway.mtail"
REQUESTS = "zbi_gateway_requests_total"
DURATION = "zbi_gateway_request_duration_seconds"
# Labels of REQUESTS: `code` is the HTTP status for JSON-RPC and the grpc-status for gRPC.
REQUEST_LABELS = ("user", "api", "method", "code")
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)
METRICS_PORT = 3903
SYSLOG_PORT = 5140

_CAPTURES = {
    "user": r'(?P<user>[^"\\]*)',
    "api": r"(?P<api>[a-z-]+)",
    "method": r'(?P<method>[^"\\]*)',
    "code": r"(?P<code>\d*)",
    "seconds": r"(?P<seconds>\d+\.\d+)",
}
_ANY = r'[^"\\]*'


def metric_names() -> set[str]:
    """What the program exports from its start, as Prometheus sees it (histograms add their series suffixes);
    gateway_cache.REQUESTS, being labelled, appears at the first cached method's call."""
    return {REQUESTS, *(f"{DURATION}{suffix}" for suffix in ("_bucket", "_sum", "_count")), gateway_cache.STORED_BYTES}


def mtail_program() -> str:
    """The mtail program for the gateway's access log, matching ACCESS_LOG_FIELDS from `user` to `seconds`."""
    fields = list(ACCESS_LOG_FIELDS)
    span = fields[fields.index("user") : fields.index("seconds") + 1]
    pattern = ",".join(f'"{field}":"{_CAPTURES.get(field, _ANY)}"' for field in span)
    buckets = ", ".join(str(b) for b in DURATION_BUCKETS)
    return f"""# Rendered by zbi_infra.render.gateway_metrics: do not edit.
counter {REQUESTS} by {", ".join(REQUEST_LABELS)}
histogram {DURATION} by api buckets {buckets}

/{pattern}/ {{
  {REQUESTS}[$user][$api][$method][$code]++
  {DURATION}[$api] = $seconds
}}
{gateway_cache.mtail_stanza()}"""
