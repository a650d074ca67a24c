"""What history scaling adds to `zbi cost`, read from the plan like the rest (zbi_infra/cost.py calls this).

- Fast snapshot restore, where the administrator turned it on: the rotating snapshot is enabled in every zone its
  VolumeSnapshotClass names, all month (one snapshot at a time: a rotated-out snapshot is deleted, which stops its
  billing). Each rotation starts a new enablement, billed an hour at least; rotations every few hours add at most
  one overlapping hour per zone each, priced here too.
- The rotating snapshot's storage: one full copy of a chain volume's used blocks (an assumption: EBS keeps only the
  blocks a snapshot does not share with its predecessors, so this is an upper bound).

Elastic replicas' volumes and nodes are priced by the main estimate at the floor, as it prices every autoscaled tier
at its minimum.
"""

from __future__ import annotations

from typing import Any

import yaml

from zbi_infra.node.history_scaling import FSR_PARAMETER, INTERVAL_ANNOTATION, ROTATION

GIB = 2**30


def _gib(text: str) -> float:
    units = {"Gi": 1.0, "Ti": 1024.0}
    return float(text[:-2]) * units[text[-2:]] if text[-2:] in units else float(text) / GIB


def history_cost_lines(
    objects: list[dict[str, Any]], *, prices: dict[str, Any], hours: float, used_fraction: float
) -> list[tuple[str, str, str, float]]:
    """(service, what, owner instance, monthly USD) for each history instance's rotating snapshot."""
    classes = {
        obj["metadata"]["name"]: obj.get("parameters") or {}
        for obj in objects
        if obj.get("kind") == "VolumeSnapshotClass"
    }
    claims = {
        (obj["metadata"].get("namespace"), obj["metadata"]["name"]): obj
        for obj in objects
        if obj.get("kind") == "PersistentVolumeClaim"
    }
    lines = []
    for obj in objects:
        if obj.get("kind") != "ConfigMap" or obj["metadata"]["name"] != ROTATION:
            continue
        namespace = obj["metadata"]["namespace"]
        instance = namespace.removeprefix("zbi-")
        newest = _snapshot(obj["data"]["newest.yaml"])
        claim = claims.get((namespace, newest["spec"]["source"]["persistentVolumeClaimName"]))
        if claim is not None:
            used = _gib(claim["spec"]["resources"]["requests"]["storage"]) * used_fraction
            lines.append(
                (
                    "EBS snapshots",
                    f"{instance}: rotating newest snapshot, {used:.0f} GiB (at most a full copy)",
                    instance,
                    used * float(prices["snapshotGibMonth"]),
                )
            )
        zones = [
            z for z in classes.get(newest["spec"]["volumeSnapshotClassName"], {}).get(FSR_PARAMETER, "").split(",") if z
        ]
        if zones:
            # One enablement all month, plus the hour minimum each rotation's new snapshot starts with.
            rotations = _rotations_per_month(obj, hours)
            zone_hours = len(zones) * (hours + rotations)
            lines.append(
                (
                    "EBS fast snapshot restore",
                    f"{instance}: 1 snapshot x {len(zones)} zones, {hours:.0f} h + {rotations:.0f} rotations",
                    instance,
                    zone_hours * float(prices["ebsFastSnapshotRestoreHour"]),
                )
            )
    return lines


def _snapshot(text: str) -> dict[str, Any]:
    return dict(yaml.safe_load(text))


def _rotations_per_month(config_map: dict[str, Any], hours: float) -> float:
    interval = int((config_map["metadata"].get("annotations") or {})[INTERVAL_ANNOTATION])
    return hours / interval
