"""Grafana dashboards as code (Grafana's foundation SDK): one for the platform, one per instance.

Provisioned as ConfigMaps the chart's Grafana sidecar loads (label `grafana_dashboard: "1"`). Every query reads
metrics whose exporters' sources name them, as the alert rules do (tests check both against the same evidence).
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from zbi_infra.config.instance import InstanceConfig, LightwalletKind
from zbi_infra.monitoring.history_scaling import history_scaling_panels
from zbi_infra.node.context import namespace_of
from zbi_infra.render.gateway_metrics import DURATION, REQUESTS

CHAIN_CLAIMS = 'persistentvolumeclaim=~"data-.*"'


def _panel(title: str, unit: str, *queries: tuple[str, str]) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).height(8).span(12)
    for index, (expr, legend) in enumerate(queries):
        panel = panel.with_target(prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(65 + index)))
    return panel


def _build(builder: dashboard.Dashboard) -> dict[str, Any]:
    return json.loads(JSONEncoder(sort_keys=True).encode(builder.build()))


def platform_dashboard(instances: dict[str, InstanceConfig]) -> dict[str, Any]:
    namespaces = "|".join(sorted(namespace_of(n) for n in instances)) or "none"
    selector = f'namespace=~"{namespaces}"'
    builder = (
        dashboard.Dashboard("zBI platform")
        .uid("zbi-platform")
        .tags(["zbi"])
        .refresh("1m")
        .time("now-24h", "now")
        .with_panel(
            _panel(
                "Ready full nodes by instance",
                "short",
                (
                    f"sum by (namespace) (kube_statefulset_status_replicas_ready{{{selector}, "
                    'statefulset=~"zebrad|zakurad|zcashd"})',
                    "{{namespace}}",
                ),
            )
        )
        .with_panel(
            _panel(
                "Endpoint availability (probes, 1h)",
                "percentunit",
                ('avg_over_time(probe_success{job="zbi-endpoints"}[1h])', "{{instance}}"),
            )
        )
        .with_panel(
            _panel(
                "Container restarts (1h)",
                "short",
                (
                    f"sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total{{{selector}}}[1h]))",
                    "{{pod}}",
                ),
            )
        )
        .with_panel(
            _panel(
                "Chain volume usage",
                "percentunit",
                (
                    f'kubelet_volume_stats_used_bytes{{{selector}, persistentvolumeclaim=~"data-.*"}} '
                    f'/ kubelet_volume_stats_capacity_bytes{{{selector}, persistentvolumeclaim=~"data-.*"}}',
                    "{{namespace}}/{{persistentvolumeclaim}}",
                ),
            )
        )
    )
    return _build(builder)


def instance_dashboard(name: str, instance: InstanceConfig, *, gateway: bool = False) -> dict[str, Any]:
    selector = f'namespace="{namespace_of(name)}"'
    builder = (
        dashboard.Dashboard(f"zBI instance {name}")
        .uid(f"zbi-{name}")
        .tags(["zbi", instance.network.value])
        .refresh("1m")
        .time("now-6h", "now")
        .with_panel(
            _panel(
                "Verified tip height by replica",
                "short",
                (f"zcash_chain_verified_block_height{{{selector}}}", "{{pod}}"),
            )
        )
        .with_panel(
            _panel(
                "Blocks behind the highest replica",
                "short",
                (
                    f"max(zcash_chain_verified_block_height{{{selector}}}) - on () group_right() "
                    f"zcash_chain_verified_block_height{{{selector}}}",
                    "{{pod}}",
                ),
            )
        )
        .with_panel(_panel("Peers", "short", (f"zcash_net_peers{{{selector}}}", "{{pod}}")))
        .with_panel(
            _panel(
                "Estimated distance to the network tip",
                "short",
                (f"sync_estimated_distance_to_tip{{{selector}}}", "{{pod}}"),
            )
        )
        .with_panel(
            _panel(
                "Node RPC requests by method",
                "reqps",
                (f"sum by (method) (rate(rpc_requests_total{{{selector}}}[5m]))", "{{method}}"),
            )
        )
        .with_panel(
            _panel(
                "Chain volume usage and 7-day forecast",
                "bytes",
                (
                    f'kubelet_volume_stats_used_bytes{{{selector}, persistentvolumeclaim=~"data-.*"}}',
                    "used {{persistentvolumeclaim}}",
                ),
                (
                    f"kubelet_volume_stats_capacity_bytes{{{selector}, {CHAIN_CLAIMS}}} - predict_linear("
                    f"kubelet_volume_stats_available_bytes{{{selector}, {CHAIN_CLAIMS}}}[6h], 7 * 24 * 3600)",
                    "forecast {{persistentvolumeclaim}}",
                ),
            )
        )
        .with_panel(
            _panel(
                "Restarts (1h)",
                "short",
                (f"sum by (pod) (increase(kube_pod_container_status_restarts_total{{{selector}}}[1h]))", "{{pod}}"),
            )
        )
    )
    if instance.lightwallet.kind is LightwalletKind.LIGHTWALLETD:
        builder = (
            builder.with_panel(
                _panel(
                    "gRPC requests by method and code",
                    "reqps",
                    (
                        f"sum by (grpc_method, grpc_code) (rate(grpc_server_handled_total{{{selector}}}[5m]))",
                        "{{grpc_method}} {{grpc_code}}",
                    ),
                )
            )
            .with_panel(
                _panel(
                    "gRPC p99 latency by method",
                    "s",
                    (
                        "histogram_quantile(0.99, sum by (grpc_method, le) "
                        f"(rate(grpc_server_handling_seconds_bucket{{{selector}}}[5m])))",
                        "{{grpc_method}}",
                    ),
                )
            )
            .with_panel(
                _panel("Open gRPC connections", "short", (f"grpc_server_connections_current{{{selector}}}", "{{pod}}"))
            )
        )
    if gateway:
        builder = (
            builder.with_panel(
                _panel(
                    "Gateway requests by user, method and outcome",
                    "reqps",
                    (
                        f"sum by (user, api, method, code) (rate({REQUESTS}{{{selector}}}[5m]))",
                        "{{user}} {{api}} {{method}} {{code}}",
                    ),
                )
            )
            .with_panel(
                _panel(
                    "Gateway p99 latency by API",
                    "s",
                    (
                        f"histogram_quantile(0.99, sum by (api, le) (rate({DURATION}_bucket{{{selector}}}[5m])))",
                        "{{api}}",
                    ),
                )
            )
            .with_panel(
                _panel(
                    "Gateway refusals (bad keys, refused methods)",
                    "reqps",
                    (
                        f'sum by (user) (rate({REQUESTS}{{{selector}, method="(refused)"}}[5m]))',
                        "refused method: {{user}}",
                    ),
                    (f'sum (rate({REQUESTS}{{{selector}, code=~"401|16"}}[5m]))', "bad key"),
                )
            )
        )
        if instance.history is not None and instance.history.cache.enabled:
            from zbi_infra.monitoring.history_cache import cache_panels

            for title, unit, queries in cache_panels(selector):
                builder = builder.with_panel(_panel(title, unit, *queries))
    for title, unit, queries in history_scaling_panels(name, instance):
        builder = builder.with_panel(_panel(title, unit, *queries))
    return _build(builder)


def dashboards(
    instances: dict[str, InstanceConfig], gateways: frozenset[str] = frozenset()
) -> dict[str, dict[str, Any]]:
    """File name -> dashboard: the platform's and one per instance (with its gateway's panels when it has one)."""
    found = {"zbi-platform.json": platform_dashboard(instances)}
    for name, instance in sorted(instances.items()):
        found[f"zbi-{name}.json"] = instance_dashboard(name, instance, gateway=name in gateways)
    return found
