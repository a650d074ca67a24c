"""Alerts and dashboard panels of history scaling: replicas against their ceiling, the scaler's health, the time a
scaled-up replica took to serve against the model (zbi_infra/scale_up_model.py), and the snapshot rotation.

Rules are plain dicts in the shape of monitoring/alerts.py's, added to its groups by `alert_rules`; the metrics are
kube-state-metrics' (tests/fixtures/upstream/kube-state-metrics/metrics.json) and zebrad's (rpc_requests_total).
"""

from __future__ import annotations

from typing import Any

from zbi_infra.config.health import default_readiness
from zbi_infra.config.instance import InstanceConfig, Network
from zbi_infra.monitoring.keda import RPC_REQUESTS, hpa_name, replica_pods
from zbi_infra.node.context import namespace_of
from zbi_infra.node.history_scaling import ROTATION, scaling_of
from zbi_infra.scale_up_model import RATE_WINDOW_SECONDS, ScaleUpInputs, scale_up

AT_CEILING_FOR = "30m"
SCALER_FAILING_FOR = "15m"


def scale_up_inputs(instance: InstanceConfig) -> ScaleUpInputs | None:
    """The model's inputs for one history instance (None without scaling)."""
    scaling = scaling_of(instance)
    if scaling is None:
        return None
    readiness = instance.node.readiness or default_readiness(instance.network is Network.MAINNET)
    return ScaleUpInputs(
        volume_gib=instance.node.storage.size_gib,
        snapshot_interval_hours=scaling.snapshot_interval_hours,
        catch_up_blocks_per_second=scaling.catch_up_blocks_per_second,
        fast_snapshot_restore=scaling.fast_snapshot_restore,
        ready_max_blocks_behind=readiness.ready_max_blocks_behind,
        throughput_mibps=instance.node.storage.throughput_mibps,
    )


def modelled_seconds(instance: InstanceConfig) -> int | None:
    """The modelled time from a replica's pod being created to its being ready: the whole model but its first term
    (load detected and the HPA acting), which passes before the pod exists."""
    inputs = scale_up_inputs(instance)
    if inputs is None:
        return None
    estimate = scale_up(inputs)
    return round(estimate.serving_seconds - estimate.term("detect").seconds)


def elastic_pods(node_name: str, floor: int, ceiling: int) -> str:
    """The pods above the floor, the ones the autoscaler adds: <name>-<floor> .. <name>-<ceiling - 1>."""
    return f"{node_name}-({'|'.join(str(i) for i in range(floor, ceiling))})"


def _rule(alert: str, expr: str, for_: str, summary: str) -> dict[str, Any]:
    return {
        "alert": alert,
        "expr": expr,
        "for": for_,
        "labels": {"severity": "warning", "team": "zbi"},
        "annotations": {"summary": summary},
    }


def history_scaling_rules(instances: dict[str, InstanceConfig]) -> list[dict[str, Any]]:
    rules = []
    for name, instance in sorted(instances.items()):
        scaling = scaling_of(instance)
        seconds = modelled_seconds(instance)
        if scaling is None or seconds is None:
            continue
        node_name = instance.node.kind.value
        ns = f'namespace="{namespace_of(name)}"'
        hpa = f'{ns}, horizontalpodautoscaler="{hpa_name(node_name)}"'
        pods = f'{ns}, pod=~"{elastic_pods(node_name, scaling.floor(instance.node.replicas), scaling.max_replicas)}"'
        job, stale = f'{ns}, cronjob="{ROTATION}"', 2 * scaling.snapshot_interval_hours * 3600
        rules += [
            _rule(
                "HistoryReplicasAtCeiling",
                f"kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}} "
                f">= kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}}",
                AT_CEILING_FOR,
                f"{name}'s full nodes have run at their ceiling ({scaling.max_replicas}) for {AT_CEILING_FOR}: RPC "
                "load is above what they are set to carry. Raise history.scaling.maxReplicas or the per-replica "
                "target.",
            ),
            _rule(
                "HistoryScaleUpSlow",
                # A replica the autoscaler added, not ready for longer than the modelled time to serve.
                f"(time() - max by (namespace, pod) (kube_pod_created{{{pods}}})) > {seconds} "
                "and on (namespace, pod) "
                f'(max by (namespace, pod) (kube_pod_status_ready{{{pods}, condition="false"}}) == 1)',
                "1m",
                f"{{{{ $labels.pod }}}} was created {seconds} s ago (the modelled time to serve) and is not ready: "
                "check its claim (is the newest snapshot there?), its node, and zebrad's catch-up.",
            ),
            _rule(
                "HistoryScalerFailing",
                f'kube_horizontalpodautoscaler_status_condition{{{hpa}, condition="ScalingActive", status="false"}} '
                "== 1",
                SCALER_FAILING_FOR,
                f"{name}'s autoscaler cannot read the RPC rate from Prometheus: KEDA holds the replicas where they "
                "are. Check the keda-operator's log and Prometheus.",
            ),
            _rule(
                "HistorySnapshotStale",
                # Two intervals without a completed rotation: new replicas start further behind than modelled. A job
                # that has never succeeded has no last-success series: its age counts from the CronJob's creation.
                f"time() - kube_cronjob_status_last_successful_time{{{job}}} > {stale} "
                f"or ((time() - kube_cronjob_created{{{job}}} > {stale}) "
                f"unless on (namespace, cronjob) kube_cronjob_status_last_successful_time{{{job}}})",
                "30m",
                f"{name}'s newest chain snapshot has not been retaken for two intervals "
                f"({2 * scaling.snapshot_interval_hours} h): new replicas catch up longer than modelled. Check the "
                f"{ROTATION} job.",
            ),
        ]
    return rules


def history_scaling_panels(name: str, instance: InstanceConfig) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(title, unit, [(query, legend)]) of the instance dashboard's scaling panels; none without scaling."""
    scaling = scaling_of(instance)
    if scaling is None:
        return []
    node_name = instance.node.kind.value
    ns = f'namespace="{namespace_of(name)}"'
    hpa = f'{ns}, horizontalpodautoscaler="{hpa_name(node_name)}"'
    pods = f'{ns}, pod=~"{replica_pods(node_name)}"'
    ready = f'sum(kube_pod_status_ready{{{pods}, condition="true"}})'
    return [
        (
            "Full-node replicas: current, desired, ceiling",
            "short",
            [
                (f"kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}", "current"),
                (f"kube_horizontalpodautoscaler_status_desired_replicas{{{hpa}}}", "desired"),
                (f"kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}}", "ceiling"),
                (ready, "ready"),
            ],
        ),
        (
            "RPC requests per ready replica (target dashed by the autoscaler's threshold)",
            "reqps",
            [
                (per_replica_load(name, node_name), "per ready replica"),
                (f"vector({scaling.target_requests_per_second})", "target"),
            ],
        ),
        (
            f"Time from scale-up to ready (pod created to ready; modelled {modelled_seconds(instance)} s)",
            "s",
            [
                (
                    f"kube_pod_status_ready_time{{{pods}}} - on (namespace, pod) kube_pod_created{{{pods}}}",
                    "{{pod}}",
                )
            ],
        ),
    ]


def per_replica_load(name: str, node_name: str) -> str:
    """RPC requests per second per ready full node: the load each serving replica carries."""
    ns = f'namespace="{namespace_of(name)}"'
    pods = f'{ns}, pod=~"{replica_pods(node_name)}"'
    return (
        f"sum(rate({RPC_REQUESTS}{{{pods}}}[{RATE_WINDOW_SECONDS}s])) "
        f'/ sum(kube_pod_status_ready{{{pods}, condition="true"}})'
    )


def plan_lines(instance: InstanceConfig) -> list[str]:
    """What `zbi plan` says about a history instance's scaling: the range, the signal, and the modelled time for a
    new replica to serve, term by term with each term's basis."""
    scaling = scaling_of(instance)
    inputs = scale_up_inputs(instance)
    if scaling is None or inputs is None:
        return []
    estimate = scale_up(inputs)
    floor = scaling.floor(instance.node.replicas)
    lines = [
        f"      scaling: {floor}-{scaling.max_replicas} x {instance.node.kind.value} on {RPC_REQUESTS} "
        f"(target {scaling.target_requests_per_second}/s per replica), new replicas from a snapshot retaken every "
        f"{scaling.snapshot_interval_hours} h" + (", fast snapshot restore" if scaling.fast_snapshot_restore else ""),
        f"      a new replica serves in about {estimate.serving_seconds / 60:.0f} min (modelled, worst snapshot age, "
        f"{estimate.blocks_behind} blocks to catch up):",
    ]
    lines += [f"        {t.name}: {t.seconds:.0f} s [{t.basis}] {t.note}" for t in estimate.terms]
    return lines
