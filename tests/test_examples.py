"""The examples are real Pulumi programs: evaluate each under mocks, as `zbi plan` does for the stacks."""

from __future__ import annotations

from tests.conftest import ROOT
from zbi_infra.plan.engine import evaluate
from zbi_infra.plan.project import StackFile


def test_existing_cluster_example_builds_an_instance_without_aws() -> None:
    program = ROOT / "examples" / "existing-cluster"
    plan = evaluate(
        StackFile(stack="mainnet", config={"zbi-existing-cluster:context": "my-cluster"}),
        program=program,
        project="zbi-existing-cluster",
    )
    types = {r.type for r in plan.resources}
    assert "zbi:node:ZcashNode" in types
    assert not any(t.startswith(("aws:", "eks:")) for t in types)
    (provider,) = plan.of_type("pulumi:providers:kubernetes")
    assert provider.inputs["context"] == "my-cluster"
    (grpc,) = [r for r in plan.of_type("kubernetes:core/v1:Service") if r.name == "mainnet-lightwalletd-grpc"]
    assert grpc.inputs["spec"]["type"] == "LoadBalancer"
