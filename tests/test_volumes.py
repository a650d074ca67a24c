"""Every claim the plan makes fits the StorageClass it names: gp3 gives any volume its 3,000 IOPS baseline, and
provisioned IOPS above it need 500 IOPS per GiB (tests/fixtures/upstream/aws/gp3-limits.json), so a small claim on a
class with provisioned IOPS would stay Pending."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import UPSTREAM, PlanStack
from tests.k8s_objects import objects, one
from zbi_infra.plan.engine import Plan

GP3 = json.loads((UPSTREAM / "aws" / "gp3-limits.json").read_text())
NS = "zbi-testnet"
SMALL_CACHE = {"zbi:instances": {"testnet": {"lightwallet": {"cacheSizeGib": 1}}}}


def gib(quantity: str) -> int:
    assert quantity.endswith("Gi"), quantity
    return int(quantity[:-2])


def gp3_refuses(storage_class: dict[str, Any], size_gib: int) -> bool:
    iops = int(storage_class["parameters"].get("iops", GP3["baseline_iops"]))
    return iops > max(GP3["baseline_iops"], GP3["max_iops_per_gib"] * size_gib)


def claims(plan: Plan) -> list[tuple[str, str, int]]:
    """(workload, class, GiB) of every StatefulSet's claim template."""
    return [
        (
            sts["metadata"]["name"],
            claim["spec"]["storageClassName"],
            gib(claim["spec"]["resources"]["requests"]["storage"]),
        )
        for sts in objects(plan, "StatefulSet", NS)
        for claim in sts["spec"].get("volumeClaimTemplates", [])
    ]


def test_every_claim_fits_its_class_even_a_one_gib_cache(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev", merge=SMALL_CACHE)
    found = claims(plan)
    assert {name for name, _, _ in found} == {"zebrad", "lightwalletd"}
    for name, class_name, size in found:
        assert not gp3_refuses(one(plan, "StorageClass", class_name), size), (name, class_name, size)
    # The check bites: the same cache on the chain class (6,000 provisioned IOPS) would be refused.
    (chain_class,) = {c for n, c, _ in found if n == "zebrad"}
    assert gp3_refuses(one(plan, "StorageClass", chain_class), 1)


def test_caches_have_their_own_class_at_the_free_baseline_and_are_not_snapshotted(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    classes = {name: class_name for name, class_name, _ in claims(plan)}
    assert classes["lightwalletd"] != classes["zebrad"]
    cache = one(plan, "StorageClass", classes["lightwalletd"])
    assert cache["provisioner"] == "ebs.csi.aws.com" and cache["parameters"]["type"] == "gp3"
    assert cache["parameters"]["encrypted"] == "true" and cache["parameters"]["kmsKeyId"].startswith("arn:aws:kms:")
    assert "iops" not in cache["parameters"] and "throughput" not in cache["parameters"]
    tags = {v for k, v in cache["parameters"].items() if k.startswith("tagSpecification_")}
    assert "zbi.io/instance=testnet" in tags and not any(t.startswith("zbi.io/backup=") for t in tags)
