"""The one error type a stack's configuration can raise."""

from __future__ import annotations

import re
from collections.abc import Iterable

import pulumi

# Whatever a user pasted into a stack file, a message quotes at most this much of one unbroken run of text.
MAX_RUN = 80
# A file's path is named whole, up to Linux's PATH_MAX: clipped, a message about `/home/…/Pulumi.prod.yaml` would not
# say which file to fix (paths under a CI runner's or pytest's temporary directories are often over 80 characters).
MAX_PATH_RUN = 4096
# Absolute, or relative from `.`, `..` or `~`: a value pasted into a file (base64 has `/` too) rarely starts so.
# Any character may follow (`#`, parentheses...); a space ends the run, so each part of a path with spaces is a
# run of its own, clipped only past 80 characters.
_PATH_RUN = re.compile(r"(?:/|\.\.?/|~/)\S*")


def _clipped(match: re.Match[str]) -> str:
    run = match.group()
    if len(run) <= MAX_PATH_RUN and _PATH_RUN.fullmatch(run):
        return run
    return f"{run[:60]}…[{len(run)} characters]"


def clip(problem: str) -> str:
    return re.sub(rf"\S{{{MAX_RUN + 1},}}", _clipped, problem)


class ConfigError(pulumi.RunError):
    """Invalid stack configuration, found before any resource is registered.

    A `pulumi.RunError` so that `pulumi up` prints the message without a Python traceback.
    Each problem names the exact config key (`zbi:cluster.nodeGroups.general.minSize`) and how to fix it.
    """

    def __init__(self, problems: Iterable[str], *, what: str = "zBI stack configuration"):
        self.problems = [clip(p) for p in problems]
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid {what}:\n{lines}")
