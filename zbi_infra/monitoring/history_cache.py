"""Alerts and dashboard panels of the gateway's history cache (zbi_infra/render/gateway_cache.py): hit ratio, size,
evictions.

Hits and misses come from the gateway's mtail program (zbi_gateway_cache_requests_total, by outcome). The size is
the cache volume's, as the kubelet reports every mounted claim (kubelet_volume_stats_used_bytes and
_capacity_bytes; the volume is a generic ephemeral claim named <pod>-history-cache). nginx counts no evictions: they
are estimated as the bytes misses stored less the volume's growth, which is what the cache manager must have removed.
"""

from __future__ import annotations

from zbi_infra.config.instance import InstanceConfig
from zbi_infra.monitoring.alerts import Alert
from zbi_infra.node.context import namespace_of
from zbi_infra.node.gateway_cache_volume import VOLUME
from zbi_infra.render.gateway_cache import MAX_SIZE_SHARE, REQUESTS, STORED_BYTES

CACHE_CLAIMS = f'persistentvolumeclaim=~".+-{VOLUME}"'
# Below this share of hits, with the volume at nginx's max_size, the cache is too small for what callers re-read.
HIT_RATIO_FLOOR = 0.5
# Past this share of the volume, fills fail (nginx stops at MAX_SIZE_SHARE; the rest is temporary files).
VOLUME_FULL_SHARE = 0.95


def caching(instances: dict[str, InstanceConfig], gateways: list[str]) -> list[str]:
    """The instances whose gateway caches final-block answers."""
    return sorted(n for n in gateways if (h := instances[n].history) is not None and h.cache.enabled)


def _used_share(selector: str) -> str:
    return (
        f"sum by (namespace) (kubelet_volume_stats_used_bytes{{{selector}, {CACHE_CLAIMS}}}) "
        f"/ sum by (namespace) (kubelet_volume_stats_capacity_bytes{{{selector}, {CACHE_CLAIMS}}})"
    )


def hit_ratio(selector: str, window: str = "5m") -> str:
    hits = f'sum by (namespace) (rate({REQUESTS}{{{selector}, outcome="hit"}}[{window}]))'
    served = f'sum by (namespace) (rate({REQUESTS}{{{selector}, outcome=~"hit|miss"}}[{window}]))'
    return f"{hits} / {served}"


def evicted_bytes(selector: str) -> str:
    """Bytes/s the cache manager removed, estimated: stored less the volume's growth (never below zero)."""
    return (
        f"clamp_min(sum by (namespace) (rate({STORED_BYTES}{{{selector}}}[30m])) - sum by (namespace) "
        f"(deriv(kubelet_volume_stats_used_bytes{{{selector}, {CACHE_CLAIMS}}}[30m])), 0)"
    )


def cache_alerts(instances: list[str]) -> list[Alert]:
    namespaces = f'namespace=~"{"|".join(sorted(namespace_of(n) for n in instances)) or "none"}"'
    return [
        Alert(
            "GatewayCacheTooSmall",
            # The volume at nginx's max_size (evicting) while fewer than half the cacheable reads hit, with at least
            # one such read a second: a larger history.cache.sizeGib keeps more of what callers re-read.
            f"({hit_ratio(namespaces, '30m')} < {HIT_RATIO_FLOOR}) and on (namespace) "
            f"({_used_share(namespaces)} > {MAX_SIZE_SHARE * 0.95:.4f}) and on (namespace) "
            f'(sum by (namespace) (rate({REQUESTS}{{{namespaces}, outcome=~"hit|miss"}}[30m])) > 1)',
            "1h",
            "warning",
            f"{{{{ $labels.namespace }}}}'s gateway cache is full and under {HIT_RATIO_FLOOR:.0%} of its reads hit: "
            "it evicts what callers read again. Raise history.cache.sizeGib.",
        ),
        Alert(
            "GatewayCacheVolumeFull",
            f"{_used_share(namespaces)} > {VOLUME_FULL_SHARE}",
            "15m",
            "warning",
            f"{{{{ $labels.namespace }}}}'s gateway cache volume is over {VOLUME_FULL_SHARE:.0%} full (nginx keeps "
            f"its cache under {MAX_SIZE_SHARE:.0%}): new answers are no longer stored.",
        ),
    ]


def cache_panels(selector: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(title, unit, queries) of the instance dashboard's cache panels."""
    return [
        ("History cache hit ratio", "percentunit", [(hit_ratio(selector), "hits / (hits + misses)")]),
        (
            "History cache reads by outcome",
            "reqps",
            [(f"sum by (outcome, method) (rate({REQUESTS}{{{selector}}}[5m]))", "{{outcome}} {{method}}")],
        ),
        (
            "History cache volume",
            "bytes",
            [
                (f"kubelet_volume_stats_used_bytes{{{selector}, {CACHE_CLAIMS}}}", "used {{persistentvolumeclaim}}"),
                (
                    f"kubelet_volume_stats_capacity_bytes{{{selector}, {CACHE_CLAIMS}}}",
                    "size {{persistentvolumeclaim}}",
                ),
            ],
        ),
        (
            "History cache stored and evicted (estimated)",
            "Bps",
            [
                (f"sum (rate({STORED_BYTES}{{{selector}}}[30m]))", "stored"),
                (evicted_bytes(selector), "evicted (stored - growth)"),
            ],
        ),
    ]
