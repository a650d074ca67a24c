"""Snapshot freshness: Data Lifecycle Manager reports the snapshots a policy creates, fails and copies to another
region as CloudWatch metrics (namespace AWS/EBS, dimension DLMPolicyId). The Prometheus CloudWatch exporter reads the
stack's policy's into Prometheus, where the backup alerts watch them.

The exporter keeps only the newest datapoint within `range_seconds`, so with a window of twice the backup interval
the completion series exists exactly while a snapshot completed within that window: its absence is the alert.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

# prometheus-community/helm-charts at tag prometheus-cloudwatch-exporter-0.28.1 (exporter v0.16.0).
CLOUDWATCH_EXPORTER = ("prometheus-cloudwatch-exporter", "0.28.1")
RELEASE = "cloudwatch-exporter"
SERVICE_ACCOUNT_NAME = RELEASE
# The chart's ServiceMonitor names the job after its Service; the exporter's own `job` label becomes `exported_job`.
SCRAPE_JOB = RELEASE
DLM_NAMESPACE = "AWS/EBS"
DLM_DIMENSION = "DLMPolicyId"
STATISTIC = "Sum"
COMPLETED, FAILED, COPY_FAILED = "SnapshotsCreateCompleted", "SnapshotsCreateFailed", "SnapshotsCopiedRegionFailed"
WATCHED = (COMPLETED, FAILED, COPY_FAILED)
# DLM's metrics are hourly counts: one period per hour, read 10 minutes late so CloudWatch has converged.
PERIOD_SECONDS = 3600
DELAY_SECONDS = 600
# Each scrape costs CloudWatch API calls for hourly data, so it stays rare; the alerts read its series over three
# intervals (zbi_infra.monitoring.alerts.CLOUDWATCH_WINDOW), as a 5-minute scrape equals Prometheus's lookback.
SCRAPE_INTERVAL_MINUTES = 5


def exported_name(namespace: str, metric: str, statistic: str = STATISTIC) -> str:
    """The series name the exporter gives a CloudWatch metric (CloudWatchCollector: namespace lowercased, metric and
    statistic in snake case, invalid characters as underscores)."""

    def snake(text: str) -> str:
        return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text).lower()

    def safe(text: str) -> str:
        return re.sub(r"__+", "_", re.sub(r"[^a-zA-Z0-9:_]", "_", text))

    return f"{safe(namespace.lower() + '_' + snake(metric))}_{safe(snake(statistic))}"


def exporter_config(region: str, policy_id: str, interval_hours: int) -> dict[str, Any]:
    """The exporter's config: the watched DLM metrics of one policy, over twice the backup interval."""
    return {
        "region": region,
        "period_seconds": PERIOD_SECONDS,
        "range_seconds": 2 * interval_hours * 3600,
        "delay_seconds": DELAY_SECONDS,
        # CloudWatch's timestamps are hours old; Prometheus would drop samples stamped that far back.
        "set_timestamp": False,
        "metrics": [
            {
                "aws_namespace": DLM_NAMESPACE,
                "aws_metric_name": metric,
                "aws_dimensions": [DLM_DIMENSION],
                "aws_dimension_select": {DLM_DIMENSION: [policy_id]},
                "aws_statistics": [STATISTIC],
            }
            for metric in WATCHED
        ],
    }


def exporter_values(
    region: str, policy_id: str, interval_hours: int, *, role_arn: str, priority_class_name: str | None
) -> dict[str, Any]:
    """The chart's values: pure, so tests read them without Pulumi."""
    return {
        "fullnameOverride": RELEASE,
        # The chart renders `config` through Helm's tpl: the rendered YAML holds no template braces.
        "config": yaml.safe_dump(exporter_config(region, policy_id, interval_hours), sort_keys=False),
        "serviceAccount": {
            "create": True,
            "name": SERVICE_ACCOUNT_NAME,
            "annotations": {"eks.amazonaws.com/role-arn": role_arn},
            "automountServiceAccountToken": False,
        },
        # IRSA's web-identity token comes through the pod identity webhook's projected volume, not the API token.
        "aws": {"stsRegional": {"enabled": True}},
        "serviceMonitor": {"enabled": True, "interval": f"{SCRAPE_INTERVAL_MINUTES}m", "timeout": "60s"},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "fsGroup": 65534},
        "containerSecurityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # The JVM's performance-data file is the one thing it would write to the read-only root.
        "extraEnv": [{"name": "JAVA_TOOL_OPTIONS", "value": "-XX:-UsePerfData"}],
        "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        **({"priorityClassName": priority_class_name} if priority_class_name else {}),
    }


def cloudwatch_read_policy() -> str:
    """Read-only CloudWatch access for the exporter: these actions have no resource-level permissions."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["cloudwatch:GetMetricStatistics", "cloudwatch:ListMetrics"],
                    "Resource": "*",
                }
            ],
        }
    )
