"""The values zBI gives the monitoring charts it installs: kube-prometheus-stack (Prometheus, Alertmanager's routes
to the severity webhooks, Grafana) and the blackbox exporter (its TCP/TLS and JSON-RPC probe modules). Pure, so
tests read them without Pulumi; ZbiMonitoring (component.py) releases the charts with them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from zbi_infra.config.access import PROBE_JSON_RPC, PROBE_USER
from zbi_infra.config.monitoring import MonitoringConfig
from zbi_infra.monitoring.hardening import hardened_values

PROBE_MODULE = "tcp_tls"
# JSON-RPC through each access gateway, as the probe user (PROBE_USER), whose key the blackbox exporter reads from a
# Secret mounted at PROBE_KEY_DIR. Same job as the TCP probes: the SLO counts both.
JSON_RPC_MODULE = "zbi_jsonrpc"
PROBE_KEY_SECRET = "zbi-probe-key"
PROBE_KEY_DIR = "/etc/zbi-probe"


def kube_prometheus_stack_values(
    config: MonitoringConfig,
    *,
    storage_class_name: str | None,
    priority_class_name: str | None,
    webhooks: Mapping[str, str],
    region: str | None,
    remote_write_role_arn: str | None = None,
) -> dict[str, Any]:
    """The chart's values: pure, so tests read them without Pulumi."""
    storage = {
        "volumeClaimTemplate": {
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": f"{config.storage_gib}Gi"}},
                **({"storageClassName": storage_class_name} if storage_class_name else {}),
            }
        }
    }
    prometheus: dict[str, Any] = {
        "retention": f"{config.retention_days}d",
        "storageSpec": storage,
        # Select zBI's monitors and rules wherever they are, not only the chart's own.
        "podMonitorSelectorNilUsesHelmValues": False,
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
        "probeSelectorNilUsesHelmValues": False,
    }
    if priority_class_name:
        prometheus["priorityClassName"] = priority_class_name
    if config.remote_write_url:
        prometheus["remoteWrite"] = [{"url": config.remote_write_url, "sigv4": {"region": region or ""}}]
    receivers: list[dict[str, Any]] = [{"name": "null"}]
    routes = []
    for severity in ("critical", "warning"):
        if severity in webhooks:
            receivers.append(
                {"name": severity, "webhook_configs": [{"url": webhooks[severity], "send_resolved": True}]}
            )
            routes.append({"receiver": severity, "matchers": [f'severity="{severity}"'], "continue": False})
    service_account = (
        {"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": remote_write_role_arn}}}
        if remote_write_role_arn
        else {}
    )
    return {
        "prometheus": {"prometheusSpec": prometheus, **service_account},
        "alertmanager": {
            "alertmanagerSpec": {"priorityClassName": priority_class_name} if priority_class_name else {},
            "config": {
                "route": {"receiver": "null", "group_by": ["alertname", "namespace"], "routes": routes},
                "receivers": receivers,
            },
        },
        "grafana": {
            "sidecar": {"dashboards": {"enabled": True, "label": "grafana_dashboard"}},
            **hardened_values()["grafana"],
        },
        "prometheus-node-exporter": hardened_values()["prometheus-node-exporter"],
    }


def blackbox_values(*, probe_key: bool = False) -> dict[str, Any]:
    """The blackbox exporter's values; with `probe_key`, the JSON-RPC module and the mounted key it signs in with."""
    json_rpc: dict[str, Any] = {
        JSON_RPC_MODULE: {
            "prober": "http",
            "timeout": "5s",
            "http": {
                "method": "POST",
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"jsonrpc": "1.0", "id": "zbi-probe", "method": PROBE_JSON_RPC[0], "params": []}),
                "basic_auth": {"username": PROBE_USER, "password_file": f"{PROBE_KEY_DIR}/key"},
                "valid_status_codes": [200],
                # The node answered with its chain state, not an error: the whole path works.
                "fail_if_body_not_matches_regexp": ['"result":\\s*\\{'],
                "tls_config": {"insecure_skip_verify": True},
                "preferred_ip_protocol": "ip4",
            },
        }
    }
    mounts = [{"name": "probe-key", "mountPath": PROBE_KEY_DIR, "secretName": PROBE_KEY_SECRET, "readOnly": True}]
    return {
        **({"extraSecretMounts": mounts} if probe_key else {}),
        "config": {
            "modules": {
                **(json_rpc if probe_key else {}),
                # A TCP connection and a TLS handshake, as a wallet makes them. The identity check is the client's
                # (with the instance's CA); the probe measures availability and certificate expiry.
                PROBE_MODULE: {
                    "prober": "tcp",
                    "timeout": "5s",
                    "tcp": {"tls": True, "tls_config": {"insecure_skip_verify": True}},
                },
            }
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
