"""Validated configuration models for a zBI stack."""

from zbi_infra.config.platform import (
    AdminConfig,
    ClusterConfig,
    EndpointConfig,
    NatStrategy,
    NodeGroupConfig,
    PlatformConfig,
)
from zbi_infra.config.stack import LocalConfig, StackConfig, StackRole, load_stack_config, stack_config_values

__all__ = [
    "AdminConfig",
    "ClusterConfig",
    "EndpointConfig",
    "LocalConfig",
    "NatStrategy",
    "NodeGroupConfig",
    "PlatformConfig",
    "StackConfig",
    "StackRole",
    "load_stack_config",
    "stack_config_values",
]
