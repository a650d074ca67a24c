"""The disaster-recovery stack (see issue: cross-region DR)."""

from __future__ import annotations

from zbi_infra.config import StackConfig
from zbi_infra.errors import ConfigError


def build(config: StackConfig) -> None:
    raise ConfigError(["zbi:role: dr stacks are not available yet. Fix: use role primary or local"])
