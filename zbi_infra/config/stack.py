"""One validated model of a stack, read from its `zbi:` config."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationError, model_validator

from zbi_infra.config.base import StrictModel, Tags
from zbi_infra.config.errors import NAMESPACE, describe
from zbi_infra.config.instance import InstanceConfig, InstanceName
from zbi_infra.config.platform import ClusterConfig, PlatformConfig
from zbi_infra.config.recovery import BackupConfig, DnsConfig, DrConfig
from zbi_infra.errors import ConfigError


class StackRole(StrEnum):
    PRIMARY = "primary"
    DR = "dr"
    LOCAL = "local"


class LocalConfig(StrictModel):
    """`zbi:local`: run on a Kubernetes cluster you already have (kind, k3s, minikube), no AWS."""

    kubeconfig_context: str | None = None
    storage_class: str | None = Field(
        default=None, description="StorageClass for chain data; unset means the cluster's default class"
    )


class StackConfig(StrictModel):
    role: StackRole = StackRole.PRIMARY
    platform: PlatformConfig | None = None
    cluster: ClusterConfig | None = None
    local: LocalConfig | None = None
    instances: dict[InstanceName, InstanceConfig] = Field(default_factory=dict)
    backup: BackupConfig | None = None
    dns: DnsConfig | None = None
    dr: DrConfig | None = None
    tags: Tags

    @model_validator(mode="after")
    def _role_has_what_it_needs(self) -> StackConfig:
        role = self.role.value
        if self.role in (StackRole.PRIMARY, StackRole.DR):
            missing = [k for k in ("platform", "cluster") if getattr(self, k) is None]
            if missing:
                raise ValueError(
                    f"a {role} stack builds an AWS platform, but {', '.join(f'zbi:{k}' for k in missing)} "
                    f"is not set. Fix: add it, or set zbi:role to local to run on an existing Kubernetes cluster"
                )
            if self.local is not None:
                raise ValueError(f"zbi:local only applies to zbi:role local, this stack is {role}")
        else:
            extra = [k for k in ("platform", "cluster", "backup", "dns", "dr") if getattr(self, k) is not None]
            if extra:
                raise ValueError(
                    f"a local stack creates no AWS resources, but {', '.join(f'zbi:{k}' for k in extra)} is set. "
                    "Fix: remove it, or set zbi:role to primary"
                )
        if self.role is StackRole.DR:
            if self.dr is None:
                raise ValueError(
                    "a dr stack restores another stack, but zbi:dr is not set. "
                    "Fix: set zbi:dr.primaryStack to the primary stack's name (e.g. acme/zbi/dev)"
                )
            if self.instances:
                raise ValueError(
                    "a dr stack restores the primary's instances and declares none itself. Fix: remove zbi:instances"
                )
            if self.backup is not None:
                raise ValueError("zbi:backup belongs to the primary stack. Fix: remove it from the dr stack")
        elif self.dr is not None:
            raise ValueError(f"zbi:dr only applies to zbi:role dr, this stack is {role}. Fix: remove zbi:dr")
        same_region = self.backup and self.platform and self.backup.dr_region == self.platform.region
        if self.role is StackRole.PRIMARY and same_region:
            raise ValueError(
                "zbi:backup.drRegion equals zbi:platform.region: copies would fail with the region. "
                "Fix: choose another region, e.g. us-west-2"
            )
        return self


def _parse_value(value: Any) -> Any:
    """Pulumi hands structured config to programs as JSON text."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def load_stack_config(raw: dict[str, Any]) -> StackConfig:
    """Validate every `zbi:` key of a stack. `raw` maps full config keys ("zbi:platform") to values."""
    prefix = f"{NAMESPACE}:"
    zbi = {k[len(prefix) :]: _parse_value(v) for k, v in raw.items() if k.startswith(prefix)}
    try:
        config = StackConfig.model_validate(zbi)
    except ValidationError as exc:
        raise describe(StackConfig, exc) from None
    aws_region = raw.get("aws:region")
    primary_region = config.platform.region if config.platform and config.role is not StackRole.LOCAL else None
    if aws_region and primary_region and aws_region != primary_region:
        raise ConfigError(
            [
                f"aws:region: {aws_region} differs from zbi:platform.region {primary_region}. "
                "Fix: set both to the same region (zBI places every resource in zbi:platform.region)"
            ]
        )
    return config


def runtime_config() -> dict[str, Any]:
    """Every config key the Pulumi engine gave this program (env first, explicit settings over it)."""
    from pulumi.runtime import config as runtime

    merged = dict(runtime.get_config_env())
    merged.update(runtime.CONFIG.get())
    return merged
