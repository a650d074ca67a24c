"""Alert rules for a stack's instances, as data: one pure function renders the Prometheus rule groups that ship as a
`PrometheusRule` and as a file `promtool check rules` accepts.

Every metric a rule reads is exported by a component whose source names it (tests/fixtures/upstream/*/metrics.json:
zebrad, lightwalletd and its go-grpc-prometheus interceptors, kube-state-metrics, the kubelet, blackbox_exporter);
the tests check each expression against that evidence and run `promtool test rules` with a series that fires each
alert and one that must not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zbi_infra.config.instance import InstanceConfig, LightwalletKind, Network
from zbi_infra.monitoring.history_scaling import history_scaling_rules
from zbi_infra.monitoring.snapshot_freshness import (
    COMPLETED,
    COPY_FAILED,
    DLM_NAMESPACE,
    FAILED,
    SCRAPE_INTERVAL_MINUTES,
    SCRAPE_JOB,
    exported_name,
)
from zbi_infra.node.context import namespace_of
from zbi_infra.render.gateway_metrics import REQUESTS

# SLO: 99.9% of probes of each public endpoint succeed over 30 days: 43.2 minutes of error budget a month.
SLO_TARGET = 0.999
ERROR_BUDGET = 1 - SLO_TARGET
MONTH_MINUTES = 30 * 24 * 60
# The SRE workbook's multi-window, multi-burn-rate pairs: page when 2% of the month's budget burns in an hour
# (14.4x over 1h and 5m), or 5% in six hours (6x over 6h and 30m).
BURN_RATES = (("1h", "5m", 14.4, "critical"), ("6h", "30m", 6.0, "critical"))
BLOCKS_BEHIND = 10
MIN_PEERS = 3
VOLUME_FULL_FRACTION = 0.8
GATEWAY_SERVER_ERRORS = "5[0-9][0-9]|13|14"
GATEWAY_AUTH_REFUSALS = "401|16"
GATEWAY_ERROR_SHARE = 0.05
GATEWAY_REFUSAL_SHARE = 0.25
FULL_NODES = "zebrad|zakurad|zcashd"
LIGHT_WALLETS = "lightwalletd|zaino"
# The job of the blackbox exporter's Probes (zbi_infra.monitoring.component): the TCP and JSON-RPC probes share it.
PROBE_JOB = "zbi-endpoints"
# Series scraped every 5 minutes sit at the edge of Prometheus's 5-minute lookback: read over three intervals.
CLOUDWATCH_WINDOW = f"{3 * SCRAPE_INTERVAL_MINUTES}m"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str

    def rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity, "team": "zbi"},
            "annotations": {"summary": self.summary},
        }


def _namespaces(names: list[str]) -> str:
    return "|".join(sorted(namespace_of(n) for n in names)) or "none"


def alert_rules(
    instances: dict[str, InstanceConfig],
    *,
    probed_endpoints: bool,
    snapshot_interval_hours: int | None = None,
    gateways: list[str] | None = None,
    control_plane: bool = False,
) -> list[dict[str, Any]]:
    """Rule groups for the instances of a stack; with `probed_endpoints`, the SLO of the public endpoints the blackbox
    exporter probes (job "zbi-endpoints"); with `snapshot_interval_hours`, the freshness of the stack's DLM snapshots
    as the CloudWatch exporter reports them (see snapshot_freshness); with `gateways`, the access gateways of those
    instances (their metrics: zbi_infra.render.gateway_metrics)."""
    every = _namespaces(list(instances))
    # Chains that move on their own: an isolated regtest network has no tip to follow and no public peers.
    live = _namespaces([n for n, i in instances.items() if i.network is not Network.REGTEST])
    with_wallets = _namespaces([n for n, i in instances.items() if i.lightwallet.kind is not LightwalletKind.NONE])
    node = f'namespace=~"{live}"'
    chain: list[Alert] = [
        Alert(
            "ZcashNodeNotReady",
            f'sum by (namespace, pod) (kube_pod_status_ready{{namespace=~"{every}", pod=~"({FULL_NODES})-[0-9]+", '
            'condition="false"}) > 0',
            "15m",
            "warning",
            "Full node {{ $labels.pod }} in {{ $labels.namespace }} has not been ready for 15 minutes.",
        ),
        Alert(
            "ZcashInstanceDown",
            f'sum by (namespace) (kube_statefulset_status_replicas_ready{{namespace=~"{every}", '
            f'statefulset=~"{FULL_NODES}"}}) == 0',
            "5m",
            "critical",
            "Every full node of {{ $labels.namespace }} is down: its RPC and light-wallet endpoints are dark.",
        ),
        Alert(
            "ZcashTipNotAdvancing",
            f"max by (namespace, pod) (delta(zcash_chain_verified_block_height{{{node}}}[30m])) <= 0",
            "5m",
            "warning",
            "{{ $labels.pod }} in {{ $labels.namespace }} has verified no block for 30 minutes.",
        ),
        Alert(
            "ZcashReplicaBehind",
            f"(max by (namespace) (zcash_chain_verified_block_height{{{node}}}) - on (namespace) group_right() "
            f"zcash_chain_verified_block_height{{{node}}}) > {BLOCKS_BEHIND}",
            "15m",
            "warning",
            f"{{{{ $labels.pod }}}} is more than {BLOCKS_BEHIND} blocks behind the highest replica of "
            "{{ $labels.namespace }}.",
        ),
        Alert(
            # zebrad sets its height gauge only when it commits a block (zebra-state write.rs, finalized_state.rs):
            # a replica restarted and stuck before its first block, or one whose metrics are not scraped, has no
            # height series at all, which ZcashTipNotAdvancing and ZcashReplicaBehind cannot see.
            "ZcashHeightUnknown",
            f'max by (namespace, pod) (kube_pod_status_phase{{{node}, pod=~"zebrad-[0-9]+", phase="Running"}}) == 1 '
            f"unless on (namespace, pod) max by (namespace, pod) (zcash_chain_verified_block_height{{{node}}})",
            "30m",
            "warning",
            "{{ $labels.pod }} in {{ $labels.namespace }} has run for 30 minutes without reporting a chain height: "
            "stuck before its first block since it started, or its metrics are not scraped.",
        ),
        Alert(
            "ZcashPeersLow",
            f"max by (namespace, pod) (zcash_net_peers{{{node}}}) < {MIN_PEERS}",
            "15m",
            "warning",
            f"{{{{ $labels.pod }}}} in {{{{ $labels.namespace }}}} has fewer than {MIN_PEERS} peers.",
        ),
        Alert(
            "ZcashChainVolumeFilling",
            f'(kubelet_volume_stats_used_bytes{{namespace=~"{every}", persistentvolumeclaim=~"data-.*"}} '
            f'/ kubelet_volume_stats_capacity_bytes{{namespace=~"{every}", persistentvolumeclaim=~"data-.*"}} '
            f"> {VOLUME_FULL_FRACTION}) and predict_linear(kubelet_volume_stats_available_bytes"
            f'{{namespace=~"{every}", persistentvolumeclaim=~"data-.*"}}[6h], 7 * 24 * 3600) < 0',
            "30m",
            "warning",
            "Chain volume {{ $labels.persistentvolumeclaim }} in {{ $labels.namespace }} is over 80% full and "
            "predicted full within 7 days: raise node.storage.sizeGib (volumes expand online).",
        ),
        Alert(
            "ZbiPodRestarting",
            f'increase(kube_pod_container_status_restarts_total{{namespace=~"{every}"}}[1h]) > 3',
            "0m",
            "warning",
            "{{ $labels.pod }}/{{ $labels.container }} in {{ $labels.namespace }} restarted more than 3 times "
            "in an hour.",
        ),
    ]
    wallets: list[Alert] = [
        Alert(
            "LightWalletUnavailable",
            f'sum by (namespace) (kube_statefulset_status_replicas_ready{{namespace=~"{with_wallets}", '
            f'statefulset=~"{LIGHT_WALLETS}"}}) == 0',
            "5m",
            "critical",
            "No light-wallet replica of {{ $labels.namespace }} is ready.",
        ),
        Alert(
            "LightWalletAtMaxReplicas",
            # The light-wallet tier's HPA only (named after its workload): the gateway's has its own maximum.
            f'kube_horizontalpodautoscaler_status_current_replicas{{namespace=~"{with_wallets}", '
            f'horizontalpodautoscaler=~"{LIGHT_WALLETS}"}} >= kube_horizontalpodautoscaler_spec_max_replicas'
            f'{{namespace=~"{with_wallets}", horizontalpodautoscaler=~"{LIGHT_WALLETS}"}}',
            "30m",
            "warning",
            "{{ $labels.namespace }}'s light-wallet tier has run at its maximum replicas for 30 minutes: raise "
            "lightwallet.maxReplicas or the node groups.",
        ),
    ]
    slo: list[Alert] = [
        Alert(
            f"EndpointErrorBudgetBurn{long.upper()}",
            f'(1 - avg_over_time(probe_success{{job="{PROBE_JOB}"}}[{long}])) > {rate} * {ERROR_BUDGET:.3f} '
            f'and (1 - avg_over_time(probe_success{{job="{PROBE_JOB}"}}[{short}])) > {rate} * {ERROR_BUDGET:.3f}',
            "2m",
            severity,
            f"{{{{ $labels.instance }}}} is burning its 99.9% error budget at {rate}x over {long} and {short}.",
        )
        for long, short, rate, severity in BURN_RATES
    ]
    slo.append(
        Alert(
            # Without the prober, probe_success disappears and the burn-rate alerts above go silent: a failed scrape
            # of a Probe target (the blackbox exporter down) leaves up == 0, a Probe Prometheus lost leaves nothing.
            "EndpointProbesMissing",
            f'(max by (instance) (up{{job="{PROBE_JOB}"}}) == 0) or on () absent(up{{job="{PROBE_JOB}"}})',
            "10m",
            "critical",
            "Endpoint probes have not run for 10 minutes (the instance label names the target, if one is known): the "
            "SLO alerts are blind. Check the blackbox exporter in namespace monitoring.",
        )
    )
    groups = [
        {"name": "zbi-chain", "rules": [a.rule() for a in chain]},
        {"name": "zbi-light-wallet", "rules": [a.rule() for a in wallets]},
    ]
    if probed_endpoints:
        groups.append({"name": "zbi-endpoint-slo", "rules": [a.rule() for a in slo]})
    if snapshot_interval_hours is not None:
        groups.append({"name": "zbi-backups", "rules": [a.rule() for a in backup_alerts(snapshot_interval_hours)]})
    if gateways:
        groups.append({"name": "zbi-gateway", "rules": [a.rule() for a in gateway_alerts(gateways)]})
        from zbi_infra.monitoring.history_cache import cache_alerts, caching  # imports Alert from here

        if cached := caching(instances, gateways):
            groups.append({"name": "zbi-gateway-cache", "rules": [a.rule() for a in cache_alerts(cached)]})
    scaling = history_scaling_rules(instances)
    if scaling:
        groups.append({"name": "zbi-history-scaling", "rules": scaling})
    from zbi_infra.monitoring.history_export_alerts import history_export_alerts  # it imports Alert from here

    exports = history_export_alerts(instances)
    if exports:
        groups.append({"name": "zbi-history-export", "rules": [a.rule() for a in exports]})
    if control_plane:
        reconcile = Alert(
            "StackReconcileFailing",
            # The operator's own gauge (operator/internal/controller/pulumi/metrics_stack.go): 1 while the last
            # reconcile of a Stack failed.
            "max by (name) (max_over_time(stacks_failing[5m])) > 0",
            "15m",
            "warning",
            "The Pulumi Kubernetes Operator's reconciles of {{ $labels.name }} have failed for 15 minutes: "
            "kubectl -n zbi-control-plane describe stack {{ $labels.name }}.",
        )
        groups.append({"name": "zbi-control-plane", "rules": [reconcile.rule()]})
    return groups


def gateway_alerts(instances: list[str]) -> list[Alert]:
    namespaces = f'namespace=~"{_namespaces(instances)}"'
    requests = f"{REQUESTS}{{{namespaces}}}"

    def share(codes: str) -> str:
        return (
            f'sum by (namespace) (rate({REQUESTS}{{{namespaces}, code=~"{codes}"}}[5m])) '
            f"/ sum by (namespace) (rate({requests}[5m]))"
        )

    return [
        Alert(
            "GatewayDown",
            f'sum by (namespace) (kube_deployment_status_replicas_available{{{namespaces}, deployment="gateway"}}) '
            "== 0",
            "5m",
            "critical",
            "No access gateway of {{ $labels.namespace }} is available: its public JSON-RPC and gRPC are dark.",
        ),
        Alert(
            "GatewayErrors",
            # JSON-RPC's HTTP 5xx and gRPC's INTERNAL (13) and UNAVAILABLE (14): the node or light-wallet tier
            # behind the gateway failing its callers. Above 5% of requests for 10 minutes.
            f"{share(GATEWAY_SERVER_ERRORS)} > {GATEWAY_ERROR_SHARE}",
            "10m",
            "warning",
            f"{{{{ $labels.namespace }}}}'s gateway has answered over {GATEWAY_ERROR_SHARE:.0%} of requests with "
            "server errors for 10 minutes: check the full node and the light-wallet tier behind it.",
        ),
        Alert(
            "GatewayAuthRefusalsSpike",
            # Refused keys (HTTP 401, gRPC UNAUTHENTICATED 16): a leaked-then-revoked key still in use, a client
            # misconfigured after a rotation, or someone guessing keys. A floor of 1/s keeps a quiet instance quiet.
            f"({share(GATEWAY_AUTH_REFUSALS)} > {GATEWAY_REFUSAL_SHARE}) and on (namespace) "
            f'(sum by (namespace) (rate({REQUESTS}{{{namespaces}, code=~"{GATEWAY_AUTH_REFUSALS}"}}[5m])) > 1)',
            "10m",
            "warning",
            f"{{{{ $labels.namespace }}}}'s gateway has refused over {GATEWAY_REFUSAL_SHARE:.0%} of requests (and "
            "over one a second) for bad keys for 10 minutes.",
        ),
    ]


def backup_alerts(interval_hours: int) -> list[Alert]:
    window = 2 * interval_hours
    job = f'{{job="{SCRAPE_JOB}"}}'
    return [
        Alert(
            "ChainSnapshotStale",
            # The exporter keeps a completion series only while a snapshot completed within the window.
            f"absent_over_time({exported_name(DLM_NAMESPACE, COMPLETED)}{job}[{CLOUDWATCH_WINDOW}])",
            "30m",
            "warning",
            f"No chain snapshot has completed in {window} hours (twice the {interval_hours}h backup interval), or "
            "CloudWatch cannot be read: check the DLM policy's state and the cloudwatch-exporter's log.",
        ),
        Alert(
            "ChainSnapshotFailed",
            f"max(max_over_time({exported_name(DLM_NAMESPACE, FAILED)}{job}[{CLOUDWATCH_WINDOW}])) > 0",
            "0m",
            "warning",
            f"Data Lifecycle Manager failed to create a chain snapshot in the last {window} hours.",
        ),
        Alert(
            "ChainSnapshotCopyFailed",
            f"max(max_over_time({exported_name(DLM_NAMESPACE, COPY_FAILED)}{job}[{CLOUDWATCH_WINDOW}])) > 0",
            "0m",
            "warning",
            f"A chain snapshot's copy to the disaster-recovery region failed in the last {window} hours: the DR "
            "stack would restore from an older one.",
        ),
        Alert(
            "CloudWatchExporterFailing",
            f"max(max_over_time(cloudwatch_exporter_scrape_error{job}[{CLOUDWATCH_WINDOW}])) > 0",
            "30m",
            "warning",
            "The cloudwatch-exporter cannot read CloudWatch: snapshot alerts are blind (check its IRSA role).",
        ),
    ]


def error_budget_minutes() -> float:
    return ERROR_BUDGET * MONTH_MINUTES
