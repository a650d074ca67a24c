"""The history export's config and cost: bad values refused naming the field and the fix, a local stack refusing the
export, bucket names S3 would refuse, and `zbi cost`'s S3 and Athena lines."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import PlanStack
from tests.test_config import with_patch
from tests.test_history_export_aws import IMAGE, INSTANCES
from zbi_infra.config import load_stack_config
from zbi_infra.config.history_export import cron_problem
from zbi_infra.cost import Assumptions, estimate, load_prices
from zbi_infra.errors import ConfigError
from zbi_infra.history_catalog import bucket_name_problem
from zbi_infra.plan.engine import Plan


@pytest.fixture(scope="module")
def plan(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev", merge={"zbi:instances": INSTANCES})


# ---- config -----------------------------------------------------------------------------------------------------


def instance_config(export: dict[str, Any]) -> dict[str, Any]:
    return with_patch("zbi:instances", {"archive": {"network": "mainnet", "history": {"export": export}}})


@pytest.mark.parametrize(
    ("export", "field", "fix"),
    [
        ({"enabled": True}, "history.export", "images/history-export/Dockerfile"),
        ({"enabled": True, "image": {"repository": IMAGE["repository"]}}, "history.export", "image.tag"),
        ({"schedule": "every hour"}, "history.export.schedule", "five cron fields"),
        ({"schedule": "0 */6 * *"}, "history.export.schedule", "has 4 fields"),
        ({"schedule": "61 * * * *"}, "history.export.schedule", "outside 0-59"),
        ({"schedule": "0 0 * * MON"}, "history.export.schedule", "names like MON"),
        ({"schedule": "*/0 * * * *"}, "history.export.schedule", "step"),
        ({"scanLimitGib": 0}, "history.export.scanLimitGib", "1"),
        ({"scanLimitGib": 20000}, "history.export.scanLimitGib", "10240"),
        ({"noncurrentRetentionDays": 0}, "history.export.noncurrentRetentionDays", "1"),
        (
            {"resources": {"cpu": "1", "memory": "1Gi", "memoryLimit": "512Mi"}},
            "history.export.resources",
            "memoryLimit",
        ),
    ],
)
def test_bad_export_config_is_refused_naming_the_field_and_the_fix(
    export: dict[str, Any], field: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_config(instance_config(export))
    message = str(caught.value)
    assert f"zbi:instances.archive.{field}" in message and fix in message, message


def test_a_good_export_config_loads() -> None:
    config = load_stack_config(instance_config({"enabled": True, "image": IMAGE, "schedule": "5,35 1-3 * * 0-5"}))
    export = config.instances["archive"].history.export  # type: ignore[union-attr]
    assert export.schedule == "5,35 1-3 * * 0-5" and export.scan_limit_gib == 100


def test_cron_ranges_are_checked_field_by_field() -> None:
    assert cron_problem("0 0 1 1 7") is None
    assert "day of month" in (cron_problem("0 0 0 * *") or "")
    assert "backwards" in (cron_problem("0 5-1 * * *") or "")
    assert "month" in (cron_problem("0 0 1 13 *") or "")


def test_a_local_stack_refuses_the_export() -> None:
    local = {"zbi:role": "local", "zbi:instances": {"archive": {"network": "mainnet", "history": {
        "export": {"enabled": True, "image": IMAGE}}}}}  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_stack_config(local)
    message = str(caught.value)
    assert "zbi:instances.archive.history.export" in message and "primary stack" in message
    # The same instance without the export is fine on a local stack.
    quiet = copy.deepcopy(local)
    quiet["zbi:instances"]["archive"]["history"]["export"]["enabled"] = False
    assert load_stack_config(quiet).instances["archive"].history is not None


def test_the_local_plan_creates_nothing_in_aws(plan_stack: PlanStack) -> None:
    history = {"network": "testnet", "history": {"export": {"enabled": False}}}
    local = plan_stack("local", merge={"zbi:instances": {"archive": history}})
    assert local.named("archive-namespace")  # the instance itself is there
    assert not [r for r in local.resources if r.type.startswith(("aws:", "eks:")) or "history-export" in r.name]


def test_bucket_names_that_s3_would_refuse_are_caught() -> None:
    assert bucket_name_problem("dev", "archive") is None
    assert "63" in (bucket_name_problem("production-eu", "a" * 30) or "")
    assert "lowercase" in (bucket_name_problem("dev_1", "archive") or "")


# ---- cost -------------------------------------------------------------------------------------------------------


def test_storage_and_scans_are_priced_per_exporting_instance(plan: Plan) -> None:
    from tests.test_cost import config_of

    config = config_of("dev", {"zbi:instances": INSTANCES})
    prices = load_prices(None)
    lines = [line for line in estimate(plan, config, prices=prices, assumptions=Assumptions()).lines
             if line.service in ("S3", "Athena")]  # fmt: skip
    assert {(line.service, line.owner): round(line.monthly_usd, 4) for line in lines} == {
        ("S3", "archive"): round(100 * 0.023, 4),
        ("Athena", "archive"): 5.0,
        ("S3", "archivet"): round(100 * 0.023, 4),
        ("Athena", "archivet"): 5.0,
    }
    assert any("at most 50 GiB a query" in line.item for line in lines if line.owner == "archive")
    more = estimate(plan, config, prices=prices, assumptions=Assumptions(export_stored_gib=2000, athena_tb_scanned=3))
    costs = {(line.service, line.owner): line.monthly_usd for line in more.lines}
    assert costs[("S3", "archive")] == pytest.approx(2000 * 0.023) and costs[("Athena", "archive")] == 15.0


def test_a_prices_file_without_the_export_prices_fails_only_a_stack_that_exports(
    plan: Plan, plan_stack: PlanStack
) -> None:
    from tests.test_cost import config_of

    prices = {k: v for k, v in load_prices(None).items() if k != "athenaTbScanned"}
    config = config_of("dev", {"zbi:instances": INSTANCES})
    with pytest.raises(ConfigError, match="athenaTbScanned is missing"):
        estimate(plan, config, prices=prices, assumptions=Assumptions())
    quiet = {"zbi:instances": {"testnet": {"history": None}}}
    plain = estimate(plan_stack("dev", merge=quiet), config_of("dev", quiet), prices=prices, assumptions=Assumptions())
    assert plain.lines and not [line for line in plain.lines if line.service in ("S3", "Athena")]
