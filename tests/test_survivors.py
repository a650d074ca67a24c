"""Behaviours an independent mutation run found untested (a one-line bug in each passed the whole suite): each test
here fails on that bug, applied by hand and reverted (see README, "Mutation testing")."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.conftest import ROOT, PlanStack
from tests.k8s_objects import one, pod_spec
from zbi_infra.cli import main
from zbi_infra.config import load_stack_config
from zbi_infra.config.stack_file import read_stack_file
from zbi_infra.cost import Assumptions, estimate, load_prices

README = ROOT / "README.md"

# ---- zbi cost --check: the budget is for reserved capacity --------------------------------------------------------


def test_the_budget_check_compares_the_reserved_total(plan_stack: PlanStack, tmp_path: Path) -> None:
    """A budget between the reserved and the on-demand totals passes (the platform budgets for 1-year reserved
    EC2); one a dollar under the reserved total fails."""
    config = load_stack_config(read_stack_file("dev", ROOT / "Pulumi.dev.yaml").config)
    result = estimate(plan_stack("dev"), config, prices=load_prices(None), assumptions=Assumptions())
    reserved, on_demand = result.total(reserved=True), result.total(reserved=False)
    assert reserved + 2 < on_demand
    for name in ["Pulumi.yaml", "Pulumi.dev.yaml"]:
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks")
    shutil.copytree(ROOT / "access", tmp_path / "access")
    stack = tmp_path / "Pulumi.dev.yaml"
    original = stack.read_text()
    assert "monthlyUsd: 2500\n" in original
    for budget, exit_code in ((round((reserved + on_demand) / 2), 0), (int(reserved) - 1, 4)):
        stack.write_text(original.replace("monthlyUsd: 2500\n", f"monthlyUsd: {budget}\n"))
        assert main(["cost", "dev", "--check", "--project-dir", str(tmp_path)]) == exit_code, budget


# ---- the gateway's termination: pre-stop pause, then the drain the README promises --------------------------------


def test_the_gateways_grace_period_covers_the_pre_stop_pause_and_the_whole_drain(plan_stack: PlanStack) -> None:
    """The kubelet's clock: the grace period starts when the pre-stop hook starts (the hook's time counts against
    it), the stop signal (SIGQUIT, nginx's graceful stop) follows the hook, SIGKILL ends the grace period. So nginx
    drains for `grace - pause` seconds: exactly the drain the README promises, after exactly its pause."""
    promise = re.search(r"a (\d+) s pre-stop pause .*? up to (\d+) s\)", " ".join(README.read_text().split()))
    assert promise, "the README's gateway section no longer states its pause and drain"
    pause_promised, drain_promised = int(promise[1]), int(promise[2])
    deployment = one(plan_stack("dev"), "Deployment", "gateway", "zbi-testnet")
    pod = pod_spec(deployment)
    (nginx,) = [c for c in pod["containers"] if c["name"] == "gateway"]
    hook = nginx["lifecycle"]["preStop"]["exec"]["command"]
    assert hook[0] == "sleep"
    pause = int(hook[1])
    stop_signal_at, kill_at = pause, pod["terminationGracePeriodSeconds"]
    assert pause == pause_promised
    assert kill_at - stop_signal_at == drain_promised
