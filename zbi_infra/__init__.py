"""zBI: highly available Zcash infrastructure on Kubernetes and AWS EKS, as Pulumi components.

    from zbi_infra import ZbiVpc, ZbiCluster, ZcashNode

Components are imported on first use, so `import zbi_infra` (and the `zbi` command) stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
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
    "StackConfig": "zbi_infra.config",
    "InstanceConfig": "zbi_infra.config.instance",
    "load_stack_config": "zbi_infra.config",
    "ConfigError": "zbi_infra.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'zbi_infra' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
