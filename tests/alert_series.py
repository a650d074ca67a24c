"""The series that prove zBI's alerts under `promtool test rules`: for each alert, series that fire it and series
that must not (CASES), and the edges where a rule written slightly differently would page or stay quiet (BOUNDARY)."""

from __future__ import annotations

ENDPOINT = "testnet.lwd.zbi.example:443"
NS = 'namespace="zbi-testnet"'
POLICY = 'job="cloudwatch-exporter", exported_job="aws_ebs", dlm_policy_id="policy-0123456789abcdef0"'


def gateway_series(api: str, code: str, user: str = "exchange") -> str:
    """A series of the gateway's metrics program (zbi_infra.render.gateway_metrics) as Prometheus scrapes it."""
    return f'zbi_gateway_requests_total{{{NS}, pod="gateway-0", user="{user}", api="{api}", method="m", code="{code}"}}'


# alert -> (interval, evaluation time, series that fire it, labels it fires with, series that must not fire it)
CASES: dict[str, tuple[str, str, list[tuple[str, str]], dict[str, str], list[tuple[str, str]]]] = {
    "ZcashNodeNotReady": (
        "1m",
        "20m",
        [(f'kube_pod_status_ready{{{NS}, pod="zebrad-0", condition="false"}}', "1x30")],
        {"namespace": "zbi-testnet", "pod": "zebrad-0"},
        [(f'kube_pod_status_ready{{{NS}, pod="zebrad-0", condition="false"}}', "0x30")],
    ),
    "ZcashInstanceDown": (
        "1m",
        "10m",
        [(f'kube_statefulset_status_replicas_ready{{{NS}, statefulset="zebrad"}}', "0x20")],
        {"namespace": "zbi-testnet"},
        [(f'kube_statefulset_status_replicas_ready{{{NS}, statefulset="zebrad"}}', "1x20")],
    ),
    "ZcashTipNotAdvancing": (
        "1m",
        "40m",
        [(f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-0"}}', "100x60")],
        {"namespace": "zbi-testnet", "pod": "zebrad-0"},
        # An advancing chain, and a stalled one on an isolated regtest network (no tip to follow).
        [
            (f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-0"}}', "100+1x60"),
            ('zcash_chain_verified_block_height{namespace="zbi-regnet", pod="zebrad-0"}', "5x60"),
        ],
    ),
    "ZcashReplicaBehind": (
        "1m",
        "20m",
        [
            (f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-0"}}', "200+1x40"),
            (f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-1"}}', "100+1x40"),
        ],
        {"namespace": "zbi-testnet", "pod": "zebrad-1"},
        [
            (f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-0"}}', "200+1x40"),
            (f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-1"}}', "198+1x40"),
        ],
    ),
    # A replica with no height series (stuck before its first block since it started) fires; one reporting its
    # height, and one on an isolated regtest network, do not.
    "ZcashHeightUnknown": (
        "1m",
        "40m",
        [
            (f'kube_pod_status_phase{{{NS}, pod="zebrad-0", phase="Running"}}', "1x60"),
            (f'kube_pod_status_phase{{{NS}, pod="zebrad-1", phase="Running"}}', "1x60"),
            (f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-1"}}', "100+1x60"),
        ],
        {"namespace": "zbi-testnet", "pod": "zebrad-0"},
        [
            (f'kube_pod_status_phase{{{NS}, pod="zebrad-0", phase="Running"}}', "1x60"),
            (f'zcash_chain_verified_block_height{{{NS}, pod="zebrad-0"}}', "_x5 100+1x55"),
            ('kube_pod_status_phase{namespace="zbi-regnet", pod="zebrad-0", phase="Running"}', "1x60"),
        ],
    ),
    "ZcashPeersLow": (
        "1m",
        "20m",
        [(f'zcash_net_peers{{{NS}, pod="zebrad-0"}}', "1x30")],
        {"namespace": "zbi-testnet", "pod": "zebrad-0"},
        [(f'zcash_net_peers{{{NS}, pod="zebrad-0"}}', "8x30")],
    ),
    "ZcashChainVolumeFilling": (
        "1m",
        "8h",
        [
            (f'kubelet_volume_stats_used_bytes{{{NS}, persistentvolumeclaim="data-zebrad-0"}}', "90+0.005x600"),
            (f'kubelet_volume_stats_capacity_bytes{{{NS}, persistentvolumeclaim="data-zebrad-0"}}', "100x600"),
            (f'kubelet_volume_stats_available_bytes{{{NS}, persistentvolumeclaim="data-zebrad-0"}}', "10-0.005x600"),
        ],
        {"namespace": "zbi-testnet", "persistentvolumeclaim": "data-zebrad-0"},
        # Over 80% but not growing: nothing to predict.
        [
            (f'kubelet_volume_stats_used_bytes{{{NS}, persistentvolumeclaim="data-zebrad-0"}}', "90x600"),
            (f'kubelet_volume_stats_capacity_bytes{{{NS}, persistentvolumeclaim="data-zebrad-0"}}', "100x600"),
            (f'kubelet_volume_stats_available_bytes{{{NS}, persistentvolumeclaim="data-zebrad-0"}}', "10x600"),
        ],
    ),
    "ZbiPodRestarting": (
        "1m",
        "10m",
        [(f'kube_pod_container_status_restarts_total{{{NS}, pod="zebrad-0", container="zebrad"}}', "0+1x60")],
        {"namespace": "zbi-testnet", "pod": "zebrad-0", "container": "zebrad"},
        [(f'kube_pod_container_status_restarts_total{{{NS}, pod="zebrad-0", container="zebrad"}}', "2x60")],
    ),
    "LightWalletUnavailable": (
        "1m",
        "10m",
        [(f'kube_statefulset_status_replicas_ready{{{NS}, statefulset="lightwalletd"}}', "0x20")],
        {"namespace": "zbi-testnet"},
        [(f'kube_statefulset_status_replicas_ready{{{NS}, statefulset="lightwalletd"}}', "2x20")],
    ),
    "LightWalletAtMaxReplicas": (
        "1m",
        "40m",
        [
            (
                f'kube_horizontalpodautoscaler_status_current_replicas{{{NS}, horizontalpodautoscaler="lightwalletd"}}',
                "6x60",
            ),
            (f'kube_horizontalpodautoscaler_spec_max_replicas{{{NS}, horizontalpodautoscaler="lightwalletd"}}', "6x60"),
        ],
        {"namespace": "zbi-testnet", "horizontalpodautoscaler": "lightwalletd"},
        # The light-wallet tier below its maximum, while the gateway's autoscaler sits at its own: no alert.
        [
            (
                f'kube_horizontalpodautoscaler_status_current_replicas{{{NS}, horizontalpodautoscaler="lightwalletd"}}',
                "2x60",
            ),
            (f'kube_horizontalpodautoscaler_spec_max_replicas{{{NS}, horizontalpodautoscaler="lightwalletd"}}', "6x60"),
            (
                f'kube_horizontalpodautoscaler_status_current_replicas{{{NS}, horizontalpodautoscaler="gateway"}}',
                "6x60",
            ),
            (f'kube_horizontalpodautoscaler_spec_max_replicas{{{NS}, horizontalpodautoscaler="gateway"}}', "6x60"),
        ],
    ),
    # At the rendered probe interval (30 s, zbi_infra/monitoring/component.py), one failed probe in an hour is 1/120
    # (0.83%) of the long window, under the 14.4x page (1.44%); it is evaluated while the failure is still inside the
    # 5-minute window (20% there), so only the long window keeps it quiet. The boundary (two failures) is in BOUNDARY.
    "EndpointErrorBudgetBurn1H": (
        "30s",
        "65m",
        [(f'probe_success{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "0x140")],
        {"job": "zbi-endpoints", "instance": ENDPOINT},
        [(f'probe_success{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "1x125 0 1x14")],
    ),
    "EndpointErrorBudgetBurn6H": (
        "5m",
        "6h10m",
        [(f'probe_success{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "1x24 0x60")],
        {"job": "zbi-endpoints", "instance": ENDPOINT},
        [(f'probe_success{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "1x80")],
    ),
    # The blackbox exporter down: its Probe targets scrape as up == 0 and probe_success vanishes.
    "EndpointProbesMissing": (
        "1m",
        "20m",
        [(f'up{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "1x5 0x25")],
        {"instance": ENDPOINT},
        [(f'up{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "1x5 0x3 1x22")],
    ),
    "GatewayDown": (
        "1m",
        "10m",
        [(f'kube_deployment_status_replicas_available{{{NS}, deployment="gateway"}}', "0x20")],
        {"namespace": "zbi-testnet"},
        [(f'kube_deployment_status_replicas_available{{{NS}, deployment="gateway"}}', "2x20")],
    ),
    # 0.2/s of 502s among 1/s of answers (17%) fires; one a minute (1.6%) does not.
    "GatewayErrors": (
        "1m",
        "20m",
        [(gateway_series("json-rpc", "200"), "0+60x30"), (gateway_series("json-rpc", "502"), "0+12x30")],
        {"namespace": "zbi-testnet"},
        [(gateway_series("json-rpc", "200"), "0+60x30"), (gateway_series("grpc", "14"), "0+1x30")],
    ),
    # 2/s of refused keys among 1/s of answers fires; the same share on a quiet instance (0.1/s) does not.
    "GatewayAuthRefusalsSpike": (
        "1m",
        "20m",
        [(gateway_series("json-rpc", "200"), "0+60x30"), (gateway_series("grpc", "16", user="-"), "0+120x30")],
        {"namespace": "zbi-testnet"},
        [(gateway_series("json-rpc", "200"), "0+6x30"), (gateway_series("json-rpc", "401", user="-"), "0+6x30")],
    ),
    # Failing for 20 minutes fires; a failure that a later reconcile clears within 10 does not.
    "StackReconcileFailing": (
        "1m",
        "30m",
        [('stacks_failing{namespace="zbi-control-plane", name="zbi-dev"}', "0x5 1x30")],
        {"name": "zbi-dev"},
        [('stacks_failing{namespace="zbi-control-plane", name="zbi-dev"}', "0x5 1x10 0x20")],
    ),
    # The exporter drops the completion series once no snapshot completed within twice the interval.
    "ChainSnapshotStale": (
        "5m",
        "2h",
        [(f"aws_ebs_snapshots_create_completed_sum{{{POLICY}}}", "1x6 _x30")],
        {"job": "cloudwatch-exporter"},
        [(f"aws_ebs_snapshots_create_completed_sum{{{POLICY}}}", "1x30")],
    ),
    "ChainSnapshotFailed": (
        "5m",
        "30m",
        [(f"aws_ebs_snapshots_create_failed_sum{{{POLICY}}}", "0x4 1x4")],
        {},
        [(f"aws_ebs_snapshots_create_failed_sum{{{POLICY}}}", "0x8")],
    ),
    "ChainSnapshotCopyFailed": (
        "5m",
        "30m",
        [(f"aws_ebs_snapshots_copied_region_failed_sum{{{POLICY}}}", "2x8")],
        {},
        [(f"aws_ebs_snapshots_copied_region_failed_sum{{{POLICY}}}", "0x8")],
    ),
    "CloudWatchExporterFailing": (
        "5m",
        "1h",
        [('cloudwatch_exporter_scrape_error{job="cloudwatch-exporter"}', "1x12")],
        {},
        [('cloudwatch_exporter_scrape_error{job="cloudwatch-exporter"}', "0x4 1x2 0x6")],
    ),
}


def every_five_minutes(value: str, count: int, failed_scrape: int = 3) -> str:
    """A series scraped every 5 minutes as promtool sees it at a 1-minute interval, with one failed scrape: Prometheus
    writes a staleness marker for each series of a target whose scrape failed (the CloudWatch exporter's scrape reads
    CloudWatch and can time out)."""
    samples = ["stale" if n == failed_scrape else value for n in range(count)]
    return " ".join(f"{sample} _ _ _ _" for sample in samples)


CLOUDWATCH_ERROR = 'cloudwatch_exporter_scrape_error{job="cloudwatch-exporter"}'
# alert -> (interval, evaluation time, series, labels it fires with or None if it must stay quiet): the edges.
BOUNDARY: list[tuple[str, str, str, list[tuple[str, str]], dict[str, str] | None]] = [
    # Two failed probes within five minutes: 2/120 (1.67%) of the hour, over the 14.4x page (1.44%).
    (
        "EndpointErrorBudgetBurn1H",
        "30s",
        "64m",
        [(f'probe_success{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "1x119 0 1 0 1x20")],
        {"job": "zbi-endpoints", "instance": ENDPOINT},
    ),
    # The same two failures once they have left the 5-minute window: the short window clears the page.
    (
        "EndpointErrorBudgetBurn1H",
        "30s",
        "70m",
        [(f'probe_success{{job="zbi-endpoints", instance="{ENDPOINT}"}}', "1x119 0 1 0 1x20")],
        None,
    ),
    # No probe series at all (the Probe lost, or never scraped): absent() fires.
    ("EndpointProbesMissing", "1m", "20m", [('up{job="other"}', "1x30")], {"job": "zbi-endpoints"}),
    # gRPC INTERNAL (13) and UNAVAILABLE (14) alone are server errors (a rule that dropped them would stay quiet).
    (
        "GatewayErrors",
        "1m",
        "20m",
        [(gateway_series("grpc", "0"), "0+60x30"), (gateway_series("grpc", "14"), "0+12x30")],
        {"namespace": "zbi-testnet"},
    ),
    (
        "GatewayErrors",
        "1m",
        "20m",
        [(gateway_series("grpc", "0"), "0+60x30"), (gateway_series("grpc", "13"), "0+12x30")],
        {"namespace": "zbi-testnet"},
    ),
    # gRPC's client-side refusals (UNAUTHENTICATED 16) are not server errors.
    (
        "GatewayErrors",
        "1m",
        "20m",
        [(gateway_series("grpc", "0"), "0+60x30"), (gateway_series("grpc", "16"), "0+12x30")],
        None,
    ),
    # The CloudWatch exporter scraped every 5 minutes, one scrape failed: a bare `max(x) > 0` loses the series for
    # a whole interval, which resets `for: 30m`; read over three intervals it holds.
    ("CloudWatchExporterFailing", "1m", "45m", [(CLOUDWATCH_ERROR, every_five_minutes("1", 10))], {}),
    ("CloudWatchExporterFailing", "1m", "45m", [(CLOUDWATCH_ERROR, every_five_minutes("0", 10))], None),
    (
        "ChainSnapshotStale",
        "1m",
        "45m",
        [(f"aws_ebs_snapshots_create_completed_sum{{{POLICY}}}", every_five_minutes("1", 10))],
        None,
    ),
]
