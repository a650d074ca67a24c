"""A platform's monitoring, wired: ZbiMonitoring over the platform's instances, with the IRSA roles its exporters
need on AWS (remote write to Amazon Managed Prometheus; CloudWatch reads to watch the DLM policy).

ZbiPlatform (zbi_infra/platform.py) calls `platform_monitoring` with itself as `parent`: every resource keeps its
name, type and parent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from zbi_infra.backup import ZbiBackups
from zbi_infra.cluster import ZbiCluster
from zbi_infra.config import LocalConfig, StackConfig, StackRole
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.config.monitoring import LOCAL_DEFAULTS, MonitoringConfig
from zbi_infra.config.recovery import BackupConfig
from zbi_infra.monitoring.component import (
    CLOUDWATCH_EXPORTER_SERVICE_ACCOUNT,
    PROMETHEUS_SERVICE_ACCOUNT,
    SnapshotWatch,
    ZbiMonitoring,
    ZbiMonitoringArgs,
)
from zbi_infra.monitoring.snapshot_freshness import cloudwatch_read_policy
from zbi_infra.node import ZcashNode
from zbi_infra.system_nodes import system_placement


def platform_monitoring(
    stack: str,
    config: StackConfig,
    *,
    parent: pulumi.Resource,
    kubernetes: k8s.Provider,
    cluster: ZbiCluster | None,
    backups: ZbiBackups | None,
    nodes: Mapping[str, ZcashNode],
    instances: Mapping[str, InstanceConfig],
    gateways: frozenset[str],
    probe_key: pulumi.Output[str] | None,
    control_plane: bool,
) -> ZbiMonitoring:
    """Monitoring of the platform's instances; `gateways` are the instances with a JSON-RPC gateway."""
    monitoring = config.monitoring
    if config.role is StackRole.LOCAL:
        unset = {k: v for k, v in LOCAL_DEFAULTS.items() if k not in monitoring.model_fields_set}
        monitoring = monitoring.model_copy(update=unset)
    instances = dict(instances)
    remote_write_role = _remote_write_role(stack, monitoring, cluster, parent)
    webhooks = {
        severity: url
        for severity, url in (
            ("critical", config.alert_webhook_critical),
            ("warning", config.alert_webhook_warning),
        )
        if url
    }
    return ZbiMonitoring(
        f"{stack}-monitoring",
        ZbiMonitoringArgs(
            config=monitoring,
            instances=instances,
            public_endpoints=[
                node.grpc_endpoint
                for name, node in nodes.items()
                if node.grpc_endpoint is not None and instances[name].endpoints.public_grpc
            ],
            storage_class_name=(config.local or LocalConfig()).storage_class
            if config.role is StackRole.LOCAL
            else None,
            webhooks=webhooks,
            region=config.platform.region if config.platform else None,
            remote_write_role_arn=remote_write_role,
            snapshots=_snapshot_watch(stack, config, cluster, backups),
            gateways=gateways,
            json_rpc_endpoints=[node.gateway_endpoint for node in nodes.values() if node.gateway_endpoint is not None],
            probe_key=probe_key,
            control_plane=control_plane,
            placement=system_placement(config.cluster),
        ),
        opts=pulumi.ResourceOptions(parent=parent, providers={"kubernetes": kubernetes}),
    )


def _snapshot_watch(
    stack: str, config: StackConfig, cluster: ZbiCluster | None, backups: ZbiBackups | None
) -> SnapshotWatch | None:
    """The stack's DLM policy, watched through CloudWatch by an exporter on a read-only IRSA role."""
    if backups is None or cluster is None:
        return None
    role = cluster.workload_role(
        f"{stack}-cloudwatch-exporter", CLOUDWATCH_EXPORTER_SERVICE_ACCOUNT, cloudwatch_read_policy()
    )
    interval = (config.backup or BackupConfig()).interval_hours
    return SnapshotWatch(policy_id=backups.policy_id, interval_hours=interval, role_arn=role.arn)


def _remote_write_role(
    stack: str, monitoring: MonitoringConfig, cluster: ZbiCluster | None, parent: pulumi.Resource
) -> pulumi.Output[str] | None:
    """Prometheus's IRSA role: remote write to the one Amazon Managed Prometheus workspace configured."""
    workspace = monitoring.amp_workspace()
    if workspace is None or cluster is None:
        return None
    region, workspace_id = workspace
    account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=parent)).account_id
    policy = account.apply(
        lambda account_id: json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["aps:RemoteWrite"],
                        "Resource": f"arn:aws:aps:{region}:{account_id}:workspace/{workspace_id}",
                    }
                ],
            }
        )
    )
    return cluster.workload_role(f"{stack}-prometheus-remote-write", PROMETHEUS_SERVICE_ACCOUNT, policy).arn
