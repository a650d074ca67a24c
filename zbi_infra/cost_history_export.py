"""`zbi cost` for the history export: S3 storage of each exporting instance's Parquet and its Athena scans.

Neither can be read from a plan: how much Parquet the chain makes and how much analysts read are assumptions
(`--assume export_stored_gib=N`, `--assume athena_tb_scanned=N`, per exporting instance). The plan says which instances
export: those with a ZbiHistoryExport. Its KMS key is counted with the stack's other keys; the Glue catalog (one table
per exported table, one object per partition) stays inside the Data Catalog's free first million objects a month, and
a Parquet object per table and partition is a few hundred PUT requests a month, neither priced here
(docs/history-export-aws.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zbi_infra.errors import ConfigError

if TYPE_CHECKING:
    from zbi_infra.config.stack import StackConfig
    from zbi_infra.cost import Assumptions
    from zbi_infra.plan.engine import Plan

EXPORT_COMPONENT = "zbi:history:ZbiHistoryExport"
SUFFIX = "-history-export"


def _price(prices: dict[str, Any], key: str) -> float:
    value = prices.get(key)
    if not isinstance(value, int | float):
        raise ConfigError([f"prices: {key} is missing, and the stack exports history. Fix: add it to the prices file"])
    return float(value)


def history_export_costs(
    plan: Plan, config: StackConfig, prices: dict[str, Any], assumptions: Assumptions
) -> list[tuple[str, str, str, float]]:
    """(service, item, owner, monthly USD) per exporting instance."""
    rows = []
    for component in sorted(plan.of_type(EXPORT_COMPONENT), key=lambda r: r.name):
        instance = component.name.removesuffix(SUFFIX)
        history = config.instances[instance].history if instance in config.instances else None
        limit = f", at most {history.export.scan_limit_gib} GiB a query" if history else ""
        stored = assumptions.export_stored_gib
        rows.append(("S3", f"{instance}: {stored:g} GiB of Parquet (assumed)", instance,
                     stored * _price(prices, "s3StandardGibMonth")))  # fmt: skip
        scanned = assumptions.athena_tb_scanned
        rows.append(("Athena", f"{instance}: {scanned:g} TB scanned (assumed){limit}", instance,
                     scanned * _price(prices, "athenaTbScanned")))  # fmt: skip
    return rows
