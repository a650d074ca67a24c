"""Show a plan: a preview-like tree, counts by type, plan.json and Kubernetes manifests."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from zbi_infra.plan.engine import Plan, PlannedResource


def tree(plan: Plan) -> str:
    children: dict[str | None, list[PlannedResource]] = {}
    urns = {r.urn for r in plan.resources}
    for resource in plan.resources:
        parent = resource.parent if resource.parent in urns else None
        children.setdefault(parent, []).append(resource)

    lines = [f"pulumi:pulumi:Stack  {plan.project}-{plan.stack}"]

    def walk(parent: str | None, prefix: str) -> None:
        kids = sorted(children.get(parent, []), key=lambda r: (r.name, r.type))
        for index, resource in enumerate(kids):
            last = index == len(kids) - 1
            flags = "".join(
                f" [{flag}]"
                for flag, on in (("protect", resource.protect), ("retain", resource.retain_on_delete))
                if on
            )
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{resource.type}  {resource.name}{flags}")
            walk(resource.urn, prefix + ("   " if last else "│  "))

    walk(None, "")
    return "\n".join(lines)


def counts(plan: Plan) -> str:
    by_type = Counter(r.type for r in plan.resources)
    width = max((len(t) for t in by_type), default=0)
    lines = [f"  {t.ljust(width)}  {n}" for t, n in sorted(by_type.items())]
    return "\n".join([f"{len(plan.resources)} resources to create:", *lines])


def plan_document(plan: Plan) -> dict[str, Any]:
    return {
        "stack": plan.stack,
        "resources": [
            {"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent, "inputs": r.inputs}
            for r in plan.resources
        ],
    }


_HEAD = ("apiVersion", "kind", "metadata")


def manifest(resource: PlannedResource) -> dict[str, Any]:
    """A Kubernetes object as `kubectl apply` would take it (Pulumi's own bookkeeping keys dropped), with keys
    in a stable order: the wire format keeps none."""
    obj = {k: v for k, v in resource.inputs.items() if not k.startswith("__")}
    head = {k: _sorted(obj[k]) for k in _HEAD if k in obj}
    return {**head, **{k: _sorted(obj[k]) for k in sorted(obj) if k not in _HEAD}}


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _file_name(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    parts = [metadata.get("namespace") or "_cluster", obj.get("kind", "Object"), metadata.get("name", "unnamed")]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "__".join(str(p) for p in parts)) + ".yaml"


def write(plan: Plan, out: Path) -> int:
    """plan.json and one manifest per Kubernetes object; returns how many manifests were written (Helm releases
    have no manifest of their own: their charts render in the cluster)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(plan_document(plan), indent=2, sort_keys=True) + "\n")
    manifests = out / "manifests"
    manifests.mkdir(exist_ok=True)
    for old in manifests.glob("*.yaml"):
        old.unlink()
    for resource in plan.kubernetes_objects():
        obj = manifest(resource)
        if "kind" not in obj:
            continue
        (manifests / _file_name(obj)).write_text(yaml.safe_dump(obj, sort_keys=False))
    return sum(1 for _ in manifests.glob("*.yaml"))  # the files there: a name written twice counts once
