"""History's lines in `zbi plan`'s summary: whether the gateway caches final answers, where an instance's chain
lands and where analysts query it."""

from __future__ import annotations

from zbi_infra.config.history import FINAL_DEPTH
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.plan.engine import Plan


def export_lines(plan: Plan, name: str, instance: InstanceConfig) -> list[str]:
    if instance.history is None or not instance.history.export.enabled:
        return []
    export = instance.history.export
    buckets = [r for r in plan.of_type("aws:s3/bucket:Bucket") if r.name == f"{name}-history-export-data"]
    workgroups = [
        r for r in plan.of_type("aws:athena/workgroup:Workgroup") if r.name == f"{name}-history-export-workgroup"
    ]
    if not buckets or not workgroups:  # a DR stack runs the instance without its export
        return ["      history export: not in this stack (the primary's bucket has it)"]
    bucket, workgroup = buckets[0].inputs["bucket"], workgroups[0].inputs["name"]
    return [
        f"      history export: '{export.schedule}' (UTC) to s3://{bucket}/{instance.network.value}/ as Parquet",
        f"      SQL: Athena workgroup {workgroup}, at most {export.scan_limit_gib} GiB scanned a query",
    ]


def cache_lines(plan: Plan, name: str, instance: InstanceConfig) -> list[str]:
    """The cache lives in the gateway, which only an instance with an access file has: say which case this is."""
    if instance.history is None or not instance.history.cache.enabled:
        return []
    gateways = [r for r in plan.of_type("kubernetes:apps/v1:Deployment") if r.name == f"{name}-gateway"]
    if not gateways:
        return [f"      cache: none (no access file, so no gateway to cache in: `zbi access init {name}`)"]
    cache = instance.history.cache
    return [
        f"      cache: answers about final blocks ({FINAL_DEPTH:,} deep) at the gateway, {cache.size_gib} GiB per "
        "replica; confirmations recomputed at the tip"
    ]
