"""Reading an upstream repository at a pinned tag out of a local git checkout (a clone, or a bare mirror): file
contents, directory listings, the tag's commit, and the metric names its sources register. Nothing is fetched."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def git_show(checkout: Path, tag: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(checkout), "show", f"{tag}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def git_files(checkout: Path, tag: str, directory: str) -> list[str]:
    return subprocess.run(
        ["git", "-C", str(checkout), "ls-tree", "-r", "--name-only", tag, directory],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()


def git_commit(checkout: Path, tag: str) -> str:
    return subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", f"{tag}^{{commit}}"], check=True, capture_output=True, text=True
    ).stdout.strip()


def metric_names(checkout: Path, tag: str, pattern: str, *paths: str) -> list[str]:
    """Every metric name `pattern` (a regex with one group) finds in the sources at the tag."""
    files = subprocess.run(
        ["git", "-C", str(checkout), "ls-tree", "-r", "--name-only", tag], check=True, capture_output=True, text=True
    ).stdout.split()
    found: set[str] = set()
    for path in files:
        if path.endswith("_test.go"):
            continue
        if any(path.startswith(prefix) or re.fullmatch(prefix, path) for prefix in paths) and path.endswith(
            (".rs", ".go")
        ):
            found.update(re.findall(pattern, git_show(checkout, tag, path)))
    return sorted(found)
