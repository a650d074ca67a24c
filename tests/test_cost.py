"""`zbi cost`: a stack's monthly cost, computed here by hand from the plan's counts and the prices file, compared
with the estimate; budgets, assumptions and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, PlanStack
from zbi_infra.cli import main
from zbi_infra.config import load_stack_config
from zbi_infra.config.stack_file import read_stack_file
from zbi_infra.cost import Assumptions, estimate, load_prices
from zbi_infra.errors import ConfigError

P = load_prices(None)
H = P["hoursPerMonth"]


def config_of(stack: str, merge: dict | None = None):
    from tests.conftest import deep_merge

    raw = read_stack_file(stack, ROOT / f"Pulumi.{stack}.yaml").config
    return load_stack_config(deep_merge(raw, merge or {}))


def gp3(gib: float, iops: int = 3000, mibps: int = 125) -> float:
    return (
        gib * P["ebsGp3GibMonth"]
        + (iops - 3000) * P["ebsGp3IopsMonthAbove3000"]
        + (mibps - 125) * P["ebsGp3MibpsMonthAbove125"]
    )


SMALL = {
    "zbi:platform": {"availabilityZoneCount": 3, "natStrategy": "single"},
    # An instance of its own (testnet's access file exposes gRPC, which needs a light-wallet server).
    "zbi:instances": {
        "testnet": None,
        "small": {
            "network": "testnet",
            "lightwallet": {"kind": "none"},
            "endpoints": {"publicGrpc": False, "hostnames": []},
            "node": {"storage": {"sizeGib": 200, "iops": 4000, "throughputMibps": 125}},
        },
    },
    "zbi:monitoring": {"enabled": False},
    "zbi:backup": {"enabled": False},
}


def test_a_small_stack_costs_what_a_hand_computation_says(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev", merge=SMALL)
    result = estimate(plan, config_of("dev", SMALL), prices=P, assumptions=Assumptions())
    m7i = P["ec2"]["m7i.xlarge"]
    # 3 zones of one m7i.xlarge; one NAT and its address; two 200 GiB chain volumes at 4,000 IOPS; no load balancer
    # (the gateway's Service is internal), no monitoring volume, no snapshots; the EBS and secrets keys (no DR key).
    by_hand = (
        H * P["eksClusterHour"]
        + 3 * H * m7i["onDemand"]
        + 3 * 50 * P["ebsGp3GibMonth"]
        + H * P["natGatewayHour"] + 500 * P["natGatewayProcessedGib"] + 500 * P["internetEgressGib"]
        + H * P["publicIpv4Hour"]
        + 2 * gp3(200, iops=4000)
        + 2 * P["kmsKeyMonth"] + 10 * P["kmsTenThousandRequests"]
        + 2 * 10 * (P["logsIngestedGib"] + P["logsStoredGibMonth"])
    )  # fmt: skip
    assert result.total(reserved=False) == pytest.approx(by_hand, abs=0.01)
    saved = 3 * H * (m7i["onDemand"] - m7i["reserved1y"])
    assert result.total(reserved=True) == pytest.approx(by_hand - saved, abs=0.01)
    assert result.by("owner")["small"] == pytest.approx(2 * gp3(200, iops=4000), abs=0.01)


def test_the_estimate_grows_with_zones_and_replicas(plan_stack: PlanStack) -> None:
    def total(merge: dict) -> float:
        merged = {**SMALL, **merge}
        return estimate(
            plan_stack("dev", merge=merged), config_of("dev", merged), prices=P, assumptions=Assumptions()
        ).total(reserved=True)

    base = total({})
    five_zones = total({"zbi:platform": {"availabilityZoneCount": 5, "natStrategy": "single"}})
    assert five_zones - base == pytest.approx(
        2 * H * P["ec2"]["m7i.xlarge"]["reserved1y"] + 2 * 50 * P["ebsGp3GibMonth"], abs=0.01
    )
    three = {"zbi:instances": {"testnet": None, "small": {**SMALL["zbi:instances"]["small"], "node": {"replicas": 3, "storage": {"sizeGib": 200, "iops": 4000, "throughputMibps": 125}}}}}  # fmt: skip
    assert total(three) - base == pytest.approx(gp3(200, iops=4000), abs=0.01)


def test_snapshots_and_their_copies_follow_the_stated_assumptions(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    config = config_of("dev")
    result = estimate(plan, config, prices=P, assumptions=Assumptions(snapshot_daily_change_fraction=0.02))
    used = 100 * 0.7 * 2  # two replicas of 100 GiB, 70% used
    kept = used + used * 0.02 * (14 * 12 / 24)  # 14 snapshots every 12 hours: 7 days of change
    lines = [line for line in result.lines if line.service == "EBS snapshots" and "kept" in line.item]
    assert [line.monthly_usd for line in lines] == [pytest.approx(kept * P["snapshotGibMonth"])]


def test_budget_check_exit_codes(tmp_path: Path, capsys) -> None:
    assert main(["cost", "dev", "--check"]) == 0
    out = capsys.readouterr().out
    assert "budget:" in out and "under by" in out
    for name in ["Pulumi.yaml", "Pulumi.dev.yaml"]:
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks")
    shutil.copytree(ROOT / "access", tmp_path / "access")
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("monthlyUsd: 2500", "monthlyUsd: 100"))
    assert main(["cost", "dev", "--check", "--project-dir", str(tmp_path)]) == 4
    assert "over budget by $" in capsys.readouterr().err
    stack.write_text(stack.read_text().replace("  zbi:budget:\n    monthlyUsd: 100\n", ""))
    assert main(["cost", "dev", "--check", "--project-dir", str(tmp_path)]) == 2
    assert "needs zbi:budget.monthlyUsd" in capsys.readouterr().err
    assert main(["cost", "dev", "--json", "--project-dir", str(tmp_path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["budgetMonthlyUsd"] is None and document["monthlyUsd"]["reserved1y"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--assume", "egress=5"], "no assumption 'egress'"),
        (["--assume", "nlb_lcus=many"], "is not a number"),
        (["--assume", "nlb_lcus=-1"], "at least 0"),
    ],
)
def test_bad_assumptions_exit_2(capsys, args: list[str], message: str) -> None:
    assert main(["cost", "dev", *args]) == 2
    assert message in capsys.readouterr().err


def test_prices_are_overridable_and_a_missing_price_is_named(tmp_path: Path, plan_stack: PlanStack, capsys) -> None:
    prices = json.loads(json.dumps(P))
    del prices["ec2"]["m7i.xlarge"]
    with pytest.raises(ConfigError, match=r"no EC2 price for m7i\.xlarge"):
        estimate(plan_stack("dev"), config_of("dev"), prices=prices, assumptions=Assumptions())
    cheaper = json.loads(json.dumps(P))
    cheaper["eksClusterHour"] = 0.05
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(cheaper))
    assert main(["cost", "dev", "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert main(["cost", "dev", "--json", "--prices", str(path)]) == 0
    overridden = json.loads(capsys.readouterr().out)
    assert default["monthlyUsd"]["onDemand"] - overridden["monthlyUsd"]["onDemand"] == pytest.approx(H * 0.05, abs=0.01)


def test_a_local_stack_costs_nothing_on_aws(plan_stack: PlanStack) -> None:
    result = estimate(plan_stack("local"), config_of("local"), prices=P, assumptions=Assumptions())
    assert result.lines == [] and result.warnings == ["a local stack creates nothing billed by AWS"]
    # For people: the warning right under the zero totals, no empty tables, assumptions or price sources.
    from zbi_infra.cost import report

    text = report(result, P).splitlines()
    assert text[-1] == "warning: a local stack creates nothing billed by AWS" and len(text) == 4
    assert not any(line.startswith(("By service", "Assumptions", "Prices")) for line in text)


def test_each_public_load_balancer_pays_a_public_ipv4_address_per_zone(plan_stack: PlanStack) -> None:
    """AWS bills every public IPv4 address by the hour: an internet-facing NLB holds one per zone it spans."""
    result = estimate(plan_stack("dev"), config_of("dev"), prices=P, assumptions=Assumptions())
    lines = [line for line in result.lines if line.service == "VPC" and line.item.startswith("NLB ")]
    assert lines
    for line in lines:
        zones = int(line.item.split(": ")[1].split(" ")[0])
        assert zones >= 2
        assert line.monthly_usd == pytest.approx(zones * H * P["publicIpv4Hour"])


def test_the_gateways_history_cache_volumes_are_priced_at_the_gateways_minimum(plan_stack: PlanStack) -> None:
    """A generic ephemeral volume is an EBS volume per replica: the cache costs its size at the HPA's floor."""
    merge = {"zbi:instances": {"testnet": {"history": {"cache": {"sizeGib": 30}}, "gateway": {"minReplicas": 3}}}}
    result = estimate(plan_stack("dev", merge=merge), config_of("dev", merge), prices=P, assumptions=Assumptions())
    (line,) = [line for line in result.lines if "history-cache" in line.item]
    assert line.item.endswith("3 x 30 GiB gp3") and line.owner == "testnet"
    assert line.monthly_usd == pytest.approx(3 * gp3(30))
    # Without a cache, no such line.
    plain = estimate(plan_stack("dev"), config_of("dev"), prices=P, assumptions=Assumptions())
    assert not [line for line in plain.lines if "history-cache" in line.item]
