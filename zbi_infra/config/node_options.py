"""`node.extraOptions`: the full-node config keys an operator may set, and their values (config/instance.py).

zBI writes the keys that its probes, Services, volumes and peer network rest on; those are refused here, and every
other key is checked against the pinned release's config structs (tests/fixtures/upstream).
"""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources

# Keys zBI itself sets; overriding them would break probes, services or the peer network.
ZEBRAD_MANAGED_KEYS = frozenset(
    {
        "network.network",
        "network.listen_addr",
        "network.initial_mainnet_peers",
        "network.initial_testnet_peers",
        "network.cache_dir",
        "rpc.listen_addr",
        "rpc.enable_cookie_auth",
        "rpc.cookie_dir",
        "state.cache_dir",
        "health.listen_addr",
        "metrics.endpoint_addr",
        # Readiness and liveness rest on these: loosening them would mark a lagging node ready. The two thresholds
        # are tuned within bounds under node.readiness instead (zbi_infra/config/health.py).
        "health.enforce_on_test_networks",
        "health.min_connected_peers",
        "health.ready_max_blocks_behind",
        "health.ready_max_tip_age",
        "network.external_addr",
        "network.testnet_parameters",
        # An ephemeral state throws the chain away on every restart; a stop height halts the node.
        "state.ephemeral",
        "state.debug_stop_at_height",
        # Files and ports outside the pod's volumes and NetworkPolicies.
        "tracing.log_file",
        "tracing.flamegraph",
        "tracing.endpoint_addr",
        "rpc.indexer_listen_addr",
    }
)
# The sidecar zcashd of zebrad's compatibility mode is not in the zfnd/zebra runtime image.
ZEBRAD_UNSUPPORTED_SECTIONS = frozenset({"zcashd_compat"})
ZCASHD_MANAGED_KEYS = frozenset(
    {
        "testnet",
        "regtest",
        "datadir",
        "conf",
        "port",
        "rpcport",
        "rpcbind",
        "rpcallowip",
        "rpcuser",
        "rpcpassword",
        "rpcauth",
        "server",
        "listen",
        "connect",
        "addnode",
        "printtoconsole",
        "bind",
        # Backgrounding would end the container's main process; a pid file needs a writable root filesystem.
        "daemon",
        "pid",
        "experimentalfeatures",
        "lightwalletd",
    }
)
ExtraValue = str | int | float | bool | list[str] | list[int]
MAX_EXTRA_OPTIONS = 64
MAX_EXTRA_TEXT = 1024
INT64 = (-(2**63), 2**63 - 1)


@cache
def zebrad_config_keys() -> dict[str, frozenset[str]]:
    """zebrad.toml's sections and keys at the pinned release (tests/fixtures/upstream/zebra, SOURCES.json)."""
    text = resources.files("zbi_infra.data").joinpath("zebrad-config-keys.json").read_text()
    return {section: frozenset(keys) for section, keys in json.loads(text).items()}


def extra_value_problem(value: object) -> str | None:
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and len(value) > 100:
        return "a list of more than 100 values"
    for item in items:
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and not INT64[0] <= item <= INT64[1]:
            return f"{str(item)[:30]}… is outside the 64-bit range zebrad and zcashd read"
        if isinstance(item, float) and not math.isfinite(item):
            return f"{item} is not a finite number"
        if isinstance(item, str) and len(item) > MAX_EXTRA_TEXT:
            return f"a text of {len(item)} characters (at most {MAX_EXTRA_TEXT})"
        if isinstance(item, str) and ("\n" in item or "\r" in item):
            return "a line break"
        if not isinstance(item, str | int | float):
            return f"a {type(item).__name__}"
    return None
