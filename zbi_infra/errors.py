"""The one error type a stack's configuration can raise."""

from __future__ import annotations

from collections.abc import Iterable

import pulumi


class ConfigError(pulumi.RunError):
    """Invalid stack configuration, found before any resource is registered.

    A `pulumi.RunError` so that `pulumi up` prints the message without a Python traceback.
    Each problem names the exact config key (`zbi:cluster.nodeGroups.general.minSize`) and how to fix it.
    """

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid zBI stack configuration:\n{lines}")
