"""The one error type a stack's configuration can raise."""

from __future__ import annotations

import re
from collections.abc import Iterable

import pulumi

# Whatever a user pasted into a stack file, a message quotes at most this much of one unbroken run of text.
MAX_RUN = 80


def clip(problem: str) -> str:
    return re.sub(rf"\S{{{MAX_RUN + 1},}}", lambda m: f"{m.group()[:60]}…[{len(m.group())} characters]", problem)


class ConfigError(pulumi.RunError):
    """Invalid stack configuration, found before any resource is registered.

    A `pulumi.RunError` so that `pulumi up` prints the message without a Python traceback.
    Each problem names the exact config key (`zbi:cluster.nodeGroups.general.minSize`) and how to fix it.
    """

    def __init__(self, problems: Iterable[str], *, what: str = "zBI stack configuration"):
        self.problems = [clip(p) for p in problems]
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid {what}:\n{lines}")
