"""The history instance the history-scaling tests plan ("archive" on the dev stack, scaling with fast snapshot
restore), and how they pick one of its rendered objects."""

from __future__ import annotations

from typing import Any

from tests.conftest import UPSTREAM

ARCHIVE = {"network": "mainnet", "history": {"scaling": {"fastSnapshotRestore": True, "maxReplicas": 5}}}
KEDA = UPSTREAM / "keda"


def one(objects: list[dict[str, Any]], kind: str, name: str, namespace: str | None = "zbi-archive") -> dict[str, Any]:
    (found,) = [
        o
        for o in objects
        if o.get("kind") == kind and o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace
    ]
    return found
