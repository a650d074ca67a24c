"""zBI: highly available Zcash infrastructure on Kubernetes and AWS EKS, as Pulumi components.

    from zbi_infra import ZbiPlatform, ZbiVpc, ZbiCluster, ZcashNode, InstanceConfig

Every public name is importable from here; each is loaded on first use, so `import zbi_infra` (and the `zbi`
command) stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # components and their arguments
    "ZbiPlatform": "zbi_infra.platform",
    "ZbiPlatformArgs": "zbi_infra.platform",
    "ZbiVpc": "zbi_infra.vpc",
    "ZbiVpcArgs": "zbi_infra.vpc",
    "ZbiCluster": "zbi_infra.cluster",
    "ZbiClusterArgs": "zbi_infra.cluster",
    "ZcashNode": "zbi_infra.node",
    "ZcashNodeArgs": "zbi_infra.node",
    "SnapshotSource": "zbi_infra.node",
    "ZbiBackups": "zbi_infra.backup",
    "ZbiBackupsArgs": "zbi_infra.backup",
    "ZbiCertificateAuthority": "zbi_infra.tls",
    "ServerCertificate": "zbi_infra.tls",
    "ZbiMonitoring": "zbi_infra.monitoring.component",
    "ZbiMonitoringArgs": "zbi_infra.monitoring.component",
    "SnapshotWatch": "zbi_infra.monitoring.component",
    "ZbiControlPlane": "zbi_infra.control_plane",
    "ZbiControlPlaneArgs": "zbi_infra.control_plane",
    # configuration
    "StackConfig": "zbi_infra.config",
    "StackRole": "zbi_infra.config",
    "PlatformConfig": "zbi_infra.config",
    "ClusterConfig": "zbi_infra.config",
    "NodeGroupConfig": "zbi_infra.config",
    "AdminConfig": "zbi_infra.config",
    "LocalConfig": "zbi_infra.config",
    "InstanceConfig": "zbi_infra.config.instance",
    "Network": "zbi_infra.config.instance",
    "NodeKind": "zbi_infra.config.instance",
    "LightwalletKind": "zbi_infra.config.instance",
    "load_stack_config": "zbi_infra.config",
    "ControlPlaneConfig": "zbi_infra.config.control_plane",
    "stack_config_values": "zbi_infra.config",
    "read_stack_file": "zbi_infra.config.stack_file",
    "plan_date": "zbi_infra.config.stack",
    "ConfigError": "zbi_infra.errors",
    "MonitoringConfig": "zbi_infra.config.monitoring",
    "AccessFile": "zbi_infra.config.access",
    "read_access_file": "zbi_infra.config.access",
    # helpers
    "AvailabilityZone": "zbi_infra.zones",
    "lookup_zones": "zbi_infra.zones",
    "select_zones": "zbi_infra.zones",
    "namespace_of": "zbi_infra.node",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'zbi_infra' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
