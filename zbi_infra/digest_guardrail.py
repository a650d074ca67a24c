"""The `images-pinned-by-digest` guardrail (standard library only: the policy pack imports it without zBI's
dependencies). An instance with `requireImageDigests` labels its namespace; every workload there must name each
image by digest."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# On an instance's namespace with `requireImageDigests`.
REQUIRE_DIGESTS_LABEL = "zbi.io/require-image-digests"
PINNED = re.compile(r"@sha256:[0-9a-f]{64}$")
WORKLOADS = ("kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:DaemonSet",
             "kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob")  # fmt: skip


def pod_spec(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod template's spec of a workload, a Job or a CronJob."""
    spec = props.get("spec") or {}
    if "jobTemplate" in spec:  # a CronJob
        spec = spec["jobTemplate"].get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def unpinned_images(resources: list[Any]) -> list[tuple[str | None, str]]:
    """The `images-pinned-by-digest` guardrail: in a namespace labelled REQUIRE_DIGESTS_LABEL, every container and
    init container image ends in `@sha256:<64 hex>`."""
    strict = {
        (r.props.get("metadata") or {}).get("name")
        for r in resources
        if r.type == "kubernetes:core/v1:Namespace"
        and ((r.props.get("metadata") or {}).get("labels") or {}).get(REQUIRE_DIGESTS_LABEL) == "true"
    }
    found = []
    for r in resources:
        if r.type not in WORKLOADS or (r.props.get("metadata") or {}).get("namespace") not in strict:
            continue
        pod = pod_spec(r.props)
        for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
            image = str(container.get("image", ""))
            if not PINNED.search(image):
                found.append((r.urn or r.name, f"{container.get('name')}: {image} carries no digest"))
    return found
