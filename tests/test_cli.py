"""`zbi plan` end to end, in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from zbi_infra.plan.mocks import fake_kubeconfig


def zbi(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zbi_infra.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def dev_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("plan-dev")
    return zbi("plan", "dev", "--tree", "--out", str(out)), out


def test_plan_dev_succeeds_and_prints_a_tree(dev_plan) -> None:
    result, _ = dev_plan
    assert result.returncode == 0, result.stderr
    assert "─ zbi:network:ZbiVpc  zbi-dev-net\n" in result.stdout
    assert re.search(r"^[│ ]  [│ ]  [├└]─ aws:ec2/vpc:Vpc  zbi-dev-net-vpc$", result.stdout, re.MULTILINE)
    assert "eks:index:ManagedNodeGroup" in result.stdout
    assert "resources to create" in result.stdout
    assert result.stderr == ""


def test_plan_json_schema(dev_plan) -> None:
    _, out = dev_plan
    document = json.loads((out / "plan.json").read_text())
    assert set(document) == {"stack", "resources"}
    assert document["stack"] == "dev"
    urns = {r["urn"] for r in document["resources"]}
    for resource in document["resources"]:
        assert set(resource) == {"urn", "type", "name", "parent", "inputs"}
        assert resource["urn"].startswith("urn:pulumi:dev::zbi::")
        assert resource["urn"].endswith(f"::{resource['name']}")
        assert resource["parent"] is None or resource["parent"].startswith("urn:pulumi:dev::zbi::")
        assert isinstance(resource["inputs"], dict)
    children = [r for r in document["resources"] if r["parent"] in urns]
    assert len(children) > 60


def test_no_secret_in_plain_text(dev_plan) -> None:
    result, out = dev_plan
    kubeconfig = json.dumps(fake_kubeconfig("zbi-dev", "us-east-1"))
    server = json.loads(kubeconfig)["clusters"][0]["cluster"]["server"]
    everything = result.stdout + (out / "plan.json").read_text()
    everything += "".join(p.read_text() for p in (out / "manifests").glob("*.yaml"))
    assert server not in everything
    assert "[secret]" in (out / "plan.json").read_text()


def test_plan_is_deterministic(dev_plan) -> None:
    _, out = dev_plan
    again = zbi("plan", "dev", "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout) == json.loads((out / "plan.json").read_text())


def test_unknown_stack_exits_2_naming_the_known_ones() -> None:
    result = zbi("plan", "nope")
    assert result.returncode == 2
    assert "stack 'nope'" in result.stderr and "dev" in result.stderr
    assert result.stdout == ""


def test_invalid_config_exits_2_with_only_the_message(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text(
        (ROOT / "Pulumi.yaml").read_text().replace("main: stacks/", f"main: {ROOT}/stacks/")
    )
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    stack["config"]["zbi:cluster"]["nodeGroups"]["general"]["minSize"] = 5
    (tmp_path / "Pulumi.broken.yaml").write_text(yaml.safe_dump(stack))
    result = zbi("plan", "broken", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2
    assert "zbi:cluster.nodeGroups.general.desiredSize" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "out").exists()


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.dup.yaml").write_text("config:\n  zbi:role: primary\n  zbi:role: local\n")
    result = zbi("plan", "dup", cwd=tmp_path)
    assert result.returncode == 2
    assert "Pulumi.dup.yaml: line 3: 'zbi:role' is defined twice (first on line 2)" in result.stderr


@pytest.mark.parametrize("stack", ["dr", "local"])
def test_every_stack_plans_offline(stack: str, tmp_path: Path) -> None:
    result = zbi("plan", stack, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "plan.json").read_text())
    types = {r["type"] for r in document["resources"]}
    if stack == "local":
        assert not any(t.startswith(("aws:", "eks:")) for t in types)
        assert "zbi:node:ZcashNode" in types
    else:
        assert "eks:index:Cluster" in types and "pulumi:pulumi:StackReference" in types


def test_plan_shows_program_warnings(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text(
        (ROOT / "Pulumi.yaml").read_text().replace("main: stacks/", f"main: {ROOT}/stacks/")
    )
    stack = yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())
    stack["config"]["zbi:instances"]["solo"] = {"network": "testnet", "node": {"replicas": 1}}
    (tmp_path / "Pulumi.solo.yaml").write_text(yaml.safe_dump(stack))
    result = zbi("plan", "solo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Warnings:" in result.stdout
    assert "instance solo: node.replicas is 1" in result.stdout
