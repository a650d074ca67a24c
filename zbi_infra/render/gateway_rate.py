"""The gateway's rate buckets in nginx.conf, one per distinct rate limit (per user, or per address for anonymous
callers; every call of a batch counts; per replica). The njs engine has nginx count them: a limit_req zone per
bucket, a map sending each caller's rate key to its bucket's zone, the zones applied in every location that forwards
calls, and a loopback "meter" server applying them once more per extra call (a batch's, the history cache's). The
Lua engine counts them itself (zbi_rate.lua, nginx's limit_req rule in a shared dictionary per bucket): nginx.conf
only sizes the dictionaries and names the buckets."""

from __future__ import annotations

import json

from zbi_infra.config.access import MAX_BATCH_LIMIT, RateLimit

# The rate meter's socket, in nginx's temporary directory: one more call charged per request to it.
METER_SOCKET = "zbi-meter.sock"

# Each bucket's share of shared memory: about 80,000 keys of 128 bytes (nginx's limit_req node, or a Lua dictionary
# entry, with its key).
BUCKET_MEMORY_MIB = 10
# The Lua engine's shared dictionaries of buckets, one per bucket named with this prefix (zbi_rate.lua reads them).
LUA_RATE_DICT_PREFIX = "zbi_rate_"
# A file the meter looks for and never finds: its answer is then 204 (a content phase after the rate limits).
METER_NO_FILE = "zbi-meter-never-a-file"


def strictest(buckets: dict[str, RateLimit]) -> str:
    """The bucket a name unknown to this nginx.conf is counted in: a user table newer than nginx.conf (a rate change
    mid-rollout) may name one, and its caller is counted in the strictest bucket, never in none, until the new
    nginx.conf arrives."""
    return min(buckets, key=lambda name: (buckets[name].requests_per_second, buckets[name].effective_burst()))


def njs_zones(buckets: dict[str, RateLimit]) -> str:
    """A zone per bucket, keyed by the rate key of the callers in it (the map is empty for the others)."""
    strictest_name = strictest(buckets)
    lines = []
    for name, limit in sorted(buckets.items()):
        if name == strictest_name:
            others = "".join(f' {other} "";' for other in sorted(buckets) if other != name)
            entries = f'{name} $zbi_rate_key; "" "";{others} default $zbi_rate_key;'
        else:
            entries = f'{name} $zbi_rate_key; default "";'
        lines.append(f"    map $zbi_bucket $zbi_rate_{name} {{ {entries} }}")
        lines.append(
            f"    limit_req_zone $zbi_rate_{name} zone={name}:{BUCKET_MEMORY_MIB}m rate={limit.requests_per_second}r/s;"
        )
    return "\n".join(lines)


def njs_limits(buckets: dict[str, RateLimit]) -> str:
    """Every bucket, in a location that forwards calls: only the caller's own has a key, so only it counts."""
    return "\n".join(
        f"            limit_req zone={name} burst={limit.effective_burst()} nodelay;"
        for name, limit in sorted(buckets.items())
    )


def meter_upstream(temp_dir: str) -> str:
    return f"    upstream zbi_meter {{\n        server unix:{temp_dir}/{METER_SOCKET};\n        keepalive 8;\n    }}\n"


def meter_location(path: str, rate_key: str, bucket: str) -> str:
    """An internal location of the public server charging one call, through the meter, to the bucket the variables
    `rate_key` and `bucket` name (njs reaches it by subrequest: the front for a batch's calls, the history cache's
    filler for its extra node calls)."""
    return (
        f"        location = {path} {{\n"
        "            internal;\n"
        "            proxy_pass http://zbi_meter/;\n"
        "            proxy_http_version 1.1;\n"
        "            proxy_pass_request_headers off;\n"
        "            proxy_pass_request_body off;\n"
        '            proxy_set_header Content-Length "";\n'
        '            proxy_set_header Connection "";\n'
        f"            proxy_set_header X-Zbi-Rate-Key {rate_key};\n"
        f"            proxy_set_header X-Zbi-Bucket {bucket};\n"
        "        }\n"
    )


def meter_server(temp_dir: str, limits: str) -> str:
    """The njs engine's rate meter (`limits`: njs_limits), reached by subrequest for each extra call to charge."""
    return f"""
    # The rate meter: reachable only through this nginx's own socket.
    server {{
        listen unix:{temp_dir}/{METER_SOCKET};
        access_log off;
        # The front's kept-alive connections carry a batch's charges (16 at a time): as many as the largest batch.
        keepalive_requests {MAX_BATCH_LIMIT};
        location / {{
            # Whom to count, as the gateway's request told it in headers; no njs here.
            set $zbi_who "ok $http_x_zbi_rate_key $http_x_zbi_bucket -";
{limits}
            # Reached only when the caller's buckets had room (limit_req runs before this phase).
            try_files /{METER_NO_FILE} =204;
        }}
    }}
"""


def lua_dictionary(buckets: dict[str, RateLimit]) -> str:
    """The Lua engine's shared dictionaries, one per bucket as large as the njs engine's zone for it: a full one
    forgets its own least recently used keys only (in one dictionary for all, a review's 700,000 anonymous keys
    pushed out a user's bucket still counting)."""
    return "".join(
        f"    lua_shared_dict {LUA_RATE_DICT_PREFIX}{name} {BUCKET_MEMORY_MIB}m;\n" for name in sorted(buckets)
    )


def lua_configuration(buckets: dict[str, RateLimit]) -> str:
    """zbi_rate.lua's configure() call: each bucket's rate and burst, and the strictest's name."""
    limits = ", ".join(
        f"[{json.dumps(name)}] = {{{limit.requests_per_second}, {limit.effective_burst()}}}"
        for name, limit in sorted(buckets.items())
    )
    return f'require("zbi_rate").configure({{{limits}}}, {json.dumps(strictest(buckets))})'
