"""One Zcash instance on Kubernetes. `from zbi_infra.node import ZcashNode` stays the import path."""

from zbi_infra.node.component import SnapshotSource, ZcashNode, ZcashNodeArgs
from zbi_infra.node.context import namespace_of

__all__ = ["SnapshotSource", "ZcashNode", "ZcashNodeArgs", "namespace_of"]
