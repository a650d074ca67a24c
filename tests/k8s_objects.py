"""Helpers to look at the Kubernetes objects of a plan."""

from __future__ import annotations

import tomllib
from typing import Any

from zbi_infra.plan.engine import Plan
from zbi_infra.plan.render import manifest


def objects(plan: Plan, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
    found = [manifest(r) for r in plan.kubernetes_objects()]
    return [
        o for o in found if o.get("kind") == kind and (namespace is None or o["metadata"].get("namespace") == namespace)
    ]


def one(plan: Plan, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    (found,) = [o for o in objects(plan, kind, namespace) if o["metadata"]["name"] == name]
    return found


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def all_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def zebrad_config(plan: Plan, namespace: str) -> dict[str, Any]:
    return tomllib.loads(one(plan, "ConfigMap", "zebrad-config", namespace)["data"]["zebrad.toml"])
