"""`zbi plan` checks that the planned pods fit the node groups (zbi_infra/plan/capacity.py)."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, PlanStack, deep_merge
from zbi_infra.config import load_stack_config
from zbi_infra.plan.capacity import Capacity, allocatable, check_capacity
from zbi_infra.plan.project import find_project

# The case found by hand: 42 zebrad replicas of 2 CPU planned against 5 zones x 3 m7i.xlarge (60 vCPU).
FORTY_TWO = {
    name: {"network": "testnet", "node": {"replicas": replicas}, "lightwallet": {"kind": "none"}}
    for name, replicas in {"a": 9, "b": 9, "c": 8, "d": 8, "e": 8}.items()
}


def dev_config(patch: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(find_project(ROOT).stack_file("dev").config)
    for key, value in patch.items():
        config[key] = deep_merge(config[key], value) if isinstance(config.get(key), dict) else value
    return config


def capacity(plan_stack: PlanStack, patch: dict[str, Any]) -> Capacity:
    stack = find_project(ROOT).stack_file("dev")
    config = load_stack_config(dev_config(patch), secret_keys=set(stack.secret_keys))
    return check_capacity(plan_stack("dev", merge=patch), config)


def test_allocatable_follows_the_eks_node_rule() -> None:
    # m7i.xlarge: 4 vCPU, 16 GiB, 4 ENIs x 15 addresses -> 4 x 14 + 2 = 58 pods. kube-reserved CPU: 6% of the first
    # core, 1% of the second, 0.5% of the next two = 80m; memory 11 x 58 + 255 = 893 MiB; eviction 100 MiB; zBI's
    # DaemonSet allowance 200m / 300 MiB.
    node = allocatable("m7i.xlarge")
    assert node is not None
    assert (node.millicpu, node.mib, node.pods) == (4000 - 80 - 200, 16384 - 893 - 100 - 300, 58)
    # m7i.4xlarge: 16 vCPU, 8 ENIs x 30 -> 234 pods; CPU 80m + 0.25% of 12 cores (30m).
    big = allocatable("m7i.4xlarge")
    assert big is not None
    assert (big.millicpu, big.mib, big.pods) == (16000 - 110 - 200, 65536 - (11 * 234 + 255) - 100 - 300, 234)
    assert allocatable("x9.mystery") is None


def test_the_dev_stack_fits(plan_stack: PlanStack) -> None:
    assert capacity(plan_stack, {}) == Capacity([], [])


def test_forty_two_full_nodes_on_sixty_vcpu_are_refused_with_the_numbers(plan_stack: PlanStack) -> None:
    found = capacity(plan_stack, {"zbi:instances": FORTY_TWO})
    (error,) = found.errors
    # Per zone: 5 instances x ceil(8 or 9 / 5) = 10 zebrad pods x 2000m (and the dev stack's own testnet instance),
    # against 3 x 3720m allocatable.
    need = int(re.search(r"need (\d+)m CPU", error).group(1))  # type: ignore[union-attr]
    assert need >= 20_000 and "allocate 11160m CPU" in error, error
    assert "raise zbi:cluster.nodeGroups.general.maxSize to at least" in error


def test_a_pod_larger_than_any_node_is_refused(plan_stack: PlanStack) -> None:
    patch = {"zbi:instances": {"testnet": {"node": {"resources": {"cpu": "6", "memory": "8Gi"}}}}}
    errors = capacity(plan_stack, patch).errors
    # zebrad's 6 CPU plus its RPC guard's 50m (zbi_infra/node/rpc_guard.py): every container of the pod counts.
    assert any("zbi-testnet/zebrad pod requests 6050m CPU" in e and "m7i.xlarge: 3720m" in e for e in errors), errors


def test_beyond_the_desired_size_warns_how_many_nodes_the_autoscaler_adds(plan_stack: PlanStack) -> None:
    # 50 light-wallet replicas: 10 a zone at 250m, on top of the rest, exceed one m7i.xlarge a zone.
    patch = {"zbi:instances": {"testnet": {"lightwallet": {"maxReplicas": 50}}}}
    found = capacity(plan_stack, patch)
    assert found.errors == []
    (warning,) = found.warnings
    assert "the Cluster Autoscaler will add up to 1 m7i.xlarge node(s) per zone" in warning, warning


def test_zbi_plan_exits_2_before_writing_anything(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text(
        (ROOT / "Pulumi.yaml").read_text().replace("main: stacks/", f"main: {ROOT}/stacks/")
    )
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    stack["config"]["zbi:instances"] = FORTY_TWO
    (tmp_path / "Pulumi.full.yaml").write_text(yaml.safe_dump(stack))
    result = subprocess.run(
        [sys.executable, "-m", "zbi_infra.cli", "plan", "full", "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "capacity:" in result.stderr and "maxSize" in result.stderr
    assert result.stdout == "" and not (tmp_path / "out").exists()


def test_zbi_cost_prices_the_nodes_the_workload_needs_at_its_minimum(plan_stack: PlanStack) -> None:
    from zbi_infra.cost import Assumptions, estimate, load_prices
    from zbi_infra.plan.capacity import nodes_at_minimum

    stack = find_project(ROOT).stack_file("dev")
    assert nodes_at_minimum(plan_stack("dev"), load_stack_config(stack.config)) == {"general": [1] * 5}
    # Ten 2-CPU full nodes: two a zone, which one m7i.xlarge (3720m allocatable) cannot hold with the rest.
    patch = {"zbi:instances": {"testnet": {"node": {"replicas": 10}}}}
    plan = plan_stack("dev", merge=patch)
    config = load_stack_config(dev_config(patch), secret_keys=set(stack.secret_keys))
    # Zone by zone: two zebrad pods in each of the five zones, 4000m on a 3720m node.
    assert nodes_at_minimum(plan, config) == {"general": [2] * 5}
    lines = estimate(plan, config, prices=load_prices(None), assumptions=Assumptions()).lines
    ec2 = [line for line in lines if line.service == "EC2"]
    assert ec2 and all("2 x m7i.xlarge (the workload at its minimum)" in line.item for line in ec2), ec2
