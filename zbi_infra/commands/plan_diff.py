"""`zbi plan <stack> --diff <git ref>`: what a change adds, changes and removes compared with the plan at another
commit, and what it does to the monthly cost — offline, so a reviewer sees a stack-file edit's effect before any
`pulumi preview`.

The other commit is exported with `git archive` into a temporary directory and planned there by its own program
and library (a subprocess with that tree first on PYTHONPATH), with the dependencies installed here."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from zbi_infra.errors import ConfigError


def export_commit(root: Path, ref: str, target: Path) -> str:
    """Extract the tree of `ref` into `target`; returns the commit's short hash."""
    resolved = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", "--short", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if resolved.returncode != 0:
        raise ConfigError(
            [f"--diff {ref[:60]!r}: not a commit of the repository at {root}. Fix: give a branch, tag or commit"],
            what="plan request",
        )
    archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", ref], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return resolved.stdout.strip()


def _zbi_at(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", "zbi_infra.cli", *args, "--project-dir", str(tree)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def plan_at(tree: Path, stack: str) -> tuple[dict[str, Any] | None, float | None]:
    """(plan.json document, on-demand monthly cost) of `stack` in an exported tree; (None, None) when the stack did
    not exist there."""
    if not (tree / f"Pulumi.{stack}.yaml").exists():
        return None, None
    planned = _zbi_at(tree, "plan", stack, "--json")
    if planned.returncode != 0:
        raise ConfigError(
            [f"the plan of {stack} at the other commit failed: {planned.stderr.strip()[-400:]}"], what="plan request"
        )
    costed = _zbi_at(tree, "cost", stack, "--json")
    cost = json.loads(costed.stdout)["monthlyUsd"]["onDemand"] if costed.returncode == 0 else None
    return json.loads(planned.stdout), cost


def _changed_paths(before: Any, after: Any, prefix: str = "", depth: int = 3) -> list[str]:
    if before == after:
        return []
    if depth == 0 or not (isinstance(before, dict) and isinstance(after, dict)):
        return [prefix or "(inputs)"]
    paths = []
    for key in sorted(set(before) | set(after)):
        paths += _changed_paths(before.get(key), after.get(key), f"{prefix}.{key}" if prefix else key, depth - 1)
    return paths


def diff(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Resources added, changed (with the input paths that differ) and removed, by URN."""
    old = {r["urn"]: r for r in (before or {"resources": []})["resources"]}
    new = {r["urn"]: r for r in after["resources"]}

    def row(r: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"type": r["type"], "name": r["name"], **extra}

    return {
        "added": [row(new[u]) for u in sorted(new.keys() - old.keys())],
        "changed": [
            row(new[u], paths=_changed_paths(old[u]["inputs"], new[u]["inputs"]))
            for u in sorted(new.keys() & old.keys())
            if old[u]["inputs"] != new[u]["inputs"]
        ],
        "removed": [row(old[u]) for u in sorted(old.keys() - new.keys())],
    }


def report(
    stack: str,
    ref: str,
    commit: str,
    changes: dict[str, list[dict[str, Any]]],
    costs: tuple,
    *,
    new_stack: bool = False,
) -> str:
    added, changed, removed = changes["added"], changes["changed"], changes["removed"]
    lines = [
        f"Plan of {stack} here compared with {ref} ({commit}): {len(added)} to add, {len(changed)} to change, "
        f"{len(removed)} to remove"
    ]
    if new_stack:
        lines.append(f"  (Pulumi.{stack}.yaml does not exist at {ref}: the whole stack is new)")
    lines += [f"  + {r['type']}  {r['name']}" for r in added]
    lines += [f"  ~ {r['type']}  {r['name']}  ({', '.join(r['paths'][:6])})" for r in changed]
    lines += [f"  - {r['type']}  {r['name']}" for r in removed]
    before, after = costs
    if before is not None and after is not None:
        delta = after - before
        lines.append(f"Monthly cost (on demand): ${before:,.0f} -> ${after:,.0f} ({'+' if delta >= 0 else '-'}"
                     f"${abs(delta):,.0f})")  # fmt: skip
    return "\n".join(lines)


def run(args: Any, project: Any, plan: Any) -> int:
    from zbi_infra.plan import render
    from zbi_infra.plan.summary import monthly_cost

    if not args.diff.strip():
        raise ConfigError(
            ["--diff: an empty git ref. Fix: name a commit, branch or tag, e.g. --diff main"], what="flag"
        )
    with tempfile.TemporaryDirectory(prefix="zbi-diff-") as tmp:
        tree = Path(tmp)
        commit = export_commit(project.root, args.diff, tree)
        before, before_cost = plan_at(tree, args.stack)
    from zbi_infra.config import load_stack_config

    stack_file = project.stack_file(args.stack)
    config = load_stack_config(stack_file.config, secret_keys=set(stack_file.secret_keys))
    cost = monthly_cost(plan, config)
    changes = diff(before, render.plan_document(plan))
    if args.json:
        print(json.dumps({"ref": args.diff, "commit": commit, **changes}, indent=2))
    else:
        costs = (before_cost, cost[0] if cost else None)
        print(report(args.stack, args.diff, commit, changes, costs, new_stack=before is None))
    return 0
