"""ZbiMonitoring: kube-prometheus-stack (Prometheus Operator, Prometheus, Alertmanager, Grafana, kube-state-metrics,
node exporter) and the Prometheus blackbox exporter from their published charts, pinned; a PodMonitor per scraped
workload, a Probe of every public endpoint, and zBI's alert rules as a PrometheusRule; in a stack with backups, the
CloudWatch exporter that lets Prometheus see the snapshots' freshness.

The monitoring namespace carries `zbi.io/monitoring=true`, the one label the instances' NetworkPolicies admit to
their metrics ports. Alerts route by severity to webhooks that reach the program only as Pulumi secrets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra.config.instance import InstanceConfig, LightwalletKind, NodeKind
from zbi_infra.config.monitoring import MonitoringConfig
from zbi_infra.control_plane import OPERATOR_NAMESPACE, operator_selector_labels
from zbi_infra.monitoring.alerts import PROBE_JOB, alert_rules
from zbi_infra.monitoring.chart_values import (
    JSON_RPC_MODULE,
    PROBE_KEY_SECRET,
    PROBE_MODULE,
    blackbox_values,
    kube_prometheus_stack_values,
)
from zbi_infra.monitoring.chart_values import PROBE_KEY_DIR as PROBE_KEY_DIR
from zbi_infra.monitoring.dashboards import dashboards
from zbi_infra.monitoring.hardening import monitoring_guards
from zbi_infra.monitoring.keda import build_keda
from zbi_infra.monitoring.snapshot_freshness import CLOUDWATCH_EXPORTER, RELEASE, SERVICE_ACCOUNT_NAME, exporter_values
from zbi_infra.node.context import FULL_NODE, LIGHT_WALLET, MONITORING_NAMESPACE_LABEL, namespace_of
from zbi_infra.node.gateway import GATEWAY_COMPONENT
from zbi_infra.priorities import MONITORING
from zbi_infra.system_nodes import place_kube_prometheus_stack

NAMESPACE = "monitoring"
CHART_REPOSITORY = "https://prometheus-community.github.io/helm-charts"
# prometheus-community/helm-charts at these tags (tests/fixtures/upstream/prometheus-community/charts.json).
KUBE_PROMETHEUS_STACK = ("kube-prometheus-stack", "88.5.3")
BLACKBOX_EXPORTER = ("prometheus-blackbox-exporter", "11.17.2")
# The chart's Prometheus runs as this service account (release "kube-prometheus-stack").
PROMETHEUS_SERVICE_ACCOUNT = f"{NAMESPACE}:kube-prometheus-stack-prometheus"
CLOUDWATCH_EXPORTER_SERVICE_ACCOUNT = f"{NAMESPACE}:{SERVICE_ACCOUNT_NAME}"


@dataclass(frozen=True)
class SnapshotWatch:
    """The stack's DLM policy, its interval, and the exporter's IRSA role (CLOUDWATCH_EXPORTER_SERVICE_ACCOUNT) that
    may read CloudWatch."""

    policy_id: pulumi.Input[str]
    interval_hours: int
    role_arn: pulumi.Input[str]


@dataclass(frozen=True)
class ZbiMonitoringArgs:
    config: MonitoringConfig
    instances: Mapping[str, InstanceConfig]
    # host:port of each public endpoint, probed from inside the cluster as users reach it.
    public_endpoints: list[pulumi.Input[str]] = field(default_factory=list)
    # None: the cluster's default StorageClass.
    storage_class_name: pulumi.Input[str] | None = None
    priority_class_name: str | None = MONITORING.name
    # Severity -> webhook URL (secrets): "critical" pages, "warning" opens a ticket.
    webhooks: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # Remote write is signed with SigV4 in this region, as this IAM role (IRSA, see PROMETHEUS_SERVICE_ACCOUNT).
    region: str | None = None
    remote_write_role_arn: pulumi.Input[str] | None = None
    # The backups to watch (stacks with a DLM policy); needs `region`.
    snapshots: SnapshotWatch | None = None
    # Instances fronted by an access gateway (those with an access file): scraped, alerted on, charted.
    gateways: frozenset[str] = frozenset()
    # host:443 of each access gateway, probed with a JSON-RPC call signed with `probe_key` (a secret).
    json_rpc_endpoints: list[pulumi.Input[str]] = field(default_factory=list)
    probe_key: pulumi.Input[str] | None = None
    # The in-cluster control plane runs (ZbiControlPlane): alert on its failed reconciles.
    control_plane: bool = False
    # nodeSelector/tolerations of the system node group (zbi_infra/system_nodes.py); empty: any node.
    placement: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Refused here, before the component registers anything.
        if self.snapshots is not None and not self.region:
            raise ValueError("ZbiMonitoringArgs.snapshots needs region: the region of the DLM policy's metrics")


def scraped_workloads(
    name: str, instance: InstanceConfig, *, gateway: bool = False
) -> list[tuple[str, str, dict[str, str]]]:
    """(monitor name, port name, pod selector) of each workload of an instance that serves Prometheus metrics."""
    found = []
    if gateway:
        found.append(
            (
                "gateway",
                "metrics",
                {"app.kubernetes.io/instance": name, "app.kubernetes.io/component": GATEWAY_COMPONENT},
            )
        )
    if instance.node.kind in (NodeKind.ZEBRAD, NodeKind.ZAKURAD):
        found.append(
            ("full-node", "metrics", {"app.kubernetes.io/instance": name, "app.kubernetes.io/component": FULL_NODE})
        )
    if instance.lightwallet.kind is LightwalletKind.LIGHTWALLETD:
        found.append(
            (
                "light-wallet",
                "metrics",
                {"app.kubernetes.io/instance": name, "app.kubernetes.io/component": LIGHT_WALLET},
            )
        )
    return found


class ZbiMonitoring(pulumi.ComponentResource):
    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: ZbiMonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zbi:monitoring:ZbiMonitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=NAMESPACE,
                labels={
                    MONITORING_NAMESPACE_LABEL: "true",
                    "app.kubernetes.io/part-of": "zbi",
                    # node-exporter, which needs the host, runs in NODE_EXPORTER_NAMESPACE (hardening.py).
                    "pod-security.kubernetes.io/enforce": "baseline",
                },
            ),
            opts=child,
        )
        guards = monitoring_guards(name, NAMESPACE, pulumi.ResourceOptions(parent=self, depends_on=[namespace]))
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[namespace, *guards])
        values = pulumi.Output.all(
            pulumi.Output.from_input(args.storage_class_name),
            {severity: pulumi.Output.secret(url) for severity, url in args.webhooks.items()},
            pulumi.Output.from_input(args.remote_write_role_arn),
        ).apply(
            lambda v: place_kube_prometheus_stack(
                kube_prometheus_stack_values(
                    args.config,
                    storage_class_name=v[0],
                    priority_class_name=args.priority_class_name,
                    webhooks=v[1],
                    region=args.region,
                    remote_write_role_arn=v[2],
                ),
                dict(args.placement),
            )
        )
        stack = _chart(
            f"{name}-kube-prometheus-stack", "kube-prometheus-stack", KUBE_PROMETHEUS_STACK, values, in_namespace
        )
        blackbox = _chart(
            f"{name}-blackbox-exporter",
            "blackbox-exporter",
            BLACKBOX_EXPORTER,
            {**blackbox_values(probe_key=args.probe_key is not None), **args.placement},
            self._probe_key_secret(name, args, in_namespace),
        )
        # Custom resources need the operator's CRDs, which the chart installs.
        after_crds = pulumi.ResourceOptions(parent=self, depends_on=[stack])
        for instance, config in args.instances.items():
            for monitor, port, selector in scraped_workloads(instance, config, gateway=instance in args.gateways):
                k8s.apiextensions.CustomResource(
                    f"{name}-{instance}-{monitor}",
                    api_version="monitoring.coreos.com/v1",
                    kind="PodMonitor",
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=f"zbi-{monitor}", namespace=namespace_of(instance)),
                    spec={
                        "selector": {"matchLabels": selector},
                        "podMetricsEndpoints": [{"port": port, "interval": "30s"}],
                    },
                    opts=after_crds,
                )
        k8s.apiextensions.CustomResource(
            f"{name}-alerts",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="zbi-alerts", namespace=NAMESPACE),
            spec={
                "groups": alert_rules(
                    dict(args.instances),
                    probed_endpoints=bool(args.public_endpoints),
                    snapshot_interval_hours=args.snapshots.interval_hours if args.snapshots else None,
                    gateways=sorted(args.gateways),
                    control_plane=args.control_plane,
                )
            },
            opts=after_crds,
        )
        # History instances' full nodes scale on their RPC rate through KEDA (monitoring/keda.py).
        build_keda(name, dict(args.instances), args.priority_class_name, dict(args.placement), in_namespace)
        if args.snapshots is not None:
            self._snapshot_exporter(name, args.snapshots, args, after_crds)
        if args.control_plane:
            _operator_monitor(f"{name}-control-plane-monitor", after_crds)
        after_blackbox = pulumi.ResourceOptions(parent=self, depends_on=[stack, blackbox])
        if args.public_endpoints:
            _probe_endpoints(f"{name}-endpoint-probe", PROBE_JOB, PROBE_MODULE, args.public_endpoints, after_blackbox)
        if args.json_rpc_endpoints and args.probe_key is not None:
            urls = [pulumi.Output.from_input(e).apply(lambda e: f"https://{e}/") for e in args.json_rpc_endpoints]
            _probe_endpoints(f"{name}-json-rpc-probe", "zbi-json-rpc", JSON_RPC_MODULE, list(urls), after_blackbox)
        # Loaded by the chart's Grafana sidecar, which watches ConfigMaps with this label.
        for file_name, board in dashboards(dict(args.instances), args.gateways).items():
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{file_name.removesuffix('.json')}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=file_name.removesuffix(".json"), namespace=NAMESPACE, labels={"grafana_dashboard": "1"}
                ),
                data={file_name: json.dumps(board, sort_keys=True)},
                opts=in_namespace,
            )
        self.namespace = namespace.metadata.apply(lambda m: str(m.name))
        self.register_outputs({"namespace": self.namespace})

    def _probe_key_secret(
        self, name: str, args: ZbiMonitoringArgs, in_namespace: pulumi.ResourceOptions
    ) -> pulumi.ResourceOptions:
        """The probe user's key, for the blackbox exporter to mount; its options wait for it."""
        if args.probe_key is None:
            return in_namespace
        secret = k8s.core.v1.Secret(
            f"{name}-probe-key",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=PROBE_KEY_SECRET, namespace=NAMESPACE),
            type="Opaque",
            string_data={"key": pulumi.Output.secret(args.probe_key)},
            opts=in_namespace,
        )
        return pulumi.ResourceOptions.merge(in_namespace, pulumi.ResourceOptions(depends_on=[secret]))

    def _snapshot_exporter(
        self, name: str, watch: SnapshotWatch, args: ZbiMonitoringArgs, opts: pulumi.ResourceOptions
    ) -> None:
        assert args.region is not None  # ZbiMonitoringArgs refuses snapshots without a region
        region, interval = args.region, watch.interval_hours
        inputs = pulumi.Output.all(pulumi.Output.from_input(watch.policy_id), pulumi.Output.from_input(watch.role_arn))
        values = inputs.apply(
            lambda v: {
                **exporter_values(region, v[0], interval, role_arn=v[1], priority_class_name=args.priority_class_name),
                **args.placement,  # a platform pod: on the system node group when there is one
            }
        )
        # Its ServiceMonitor needs the operator's CRDs: `opts` waits for them.
        _chart(f"{name}-cloudwatch-exporter", RELEASE, CLOUDWATCH_EXPORTER, values, opts)


def _probe_endpoints(
    resource_name: str, probe: str, module: str, targets: list[pulumi.Input[str]], opts: pulumi.ResourceOptions
) -> None:
    """A blackbox Probe of `targets` with `module`, in the SLO's job."""
    k8s.apiextensions.CustomResource(
        resource_name,
        api_version="monitoring.coreos.com/v1",
        kind="Probe",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=probe, namespace=NAMESPACE),
        spec={
            "jobName": PROBE_JOB,
            "module": module,
            "interval": "30s",
            "prober": {"url": "blackbox-exporter-prometheus-blackbox-exporter.monitoring.svc:9115"},
            "targets": {"staticConfig": {"static": targets}},
        },
        opts=opts,
    )


def _operator_monitor(resource_name: str, opts: pulumi.ResourceOptions) -> None:
    """zBI's ServiceMonitor of the Pulumi Kubernetes Operator: the chart's own exists only if the monitoring CRDs did
    when the chart was rendered (templates/servicemonitor.yaml of chart 2.9.0), which a first deploy cannot order.
    Created here, after the CRDs, it makes StackReconcileFailing see `stacks_failing` from the first deploy."""
    k8s.apiextensions.CustomResource(
        resource_name,
        api_version="monitoring.coreos.com/v1",
        kind="ServiceMonitor",
        metadata=k8s.meta.v1.ObjectMetaArgs(name="zbi-pulumi-kubernetes-operator", namespace=NAMESPACE),
        spec={
            "namespaceSelector": {"matchNames": [OPERATOR_NAMESPACE]},
            "selector": {"matchLabels": operator_selector_labels()},
            "endpoints": [{"port": "http-metrics", "interval": "60s"}],
        },
        opts=opts,
    )


def _chart(
    resource_name: str, release: str, chart: tuple[str, str], values: pulumi.Input[Any], opts: pulumi.ResourceOptions
) -> k8s.helm.v3.Release:
    """A pinned chart (name, version) of the prometheus-community repository, released into the monitoring namespace."""
    return k8s.helm.v3.Release(
        resource_name,
        name=release,
        chart=chart[0],
        version=chart[1],
        namespace=NAMESPACE,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
        values=values,
        opts=opts,
    )
