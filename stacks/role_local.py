"""A local stack: zBI components on an existing Kubernetes cluster (kind, k3s, minikube), no AWS."""

from __future__ import annotations

from zbi_infra.config import StackConfig
from zbi_infra.errors import ConfigError


def build(config: StackConfig) -> None:
    raise ConfigError(["zbi:role: local stacks are not available yet. Fix: use role primary"])
