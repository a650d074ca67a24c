"""The examples are real Pulumi programs: evaluate each under mocks, as `zbi plan` does for the stacks."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, uv_binary
from zbi_infra.plan.engine import Plan, evaluate
from zbi_infra.plan.project import StackFile, find_project
from zbi_infra.plan.render import manifest

DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


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


def readme_programs() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]


def run_readme_program(source: str, tmp_path: Path, config: dict | None = None, stack: str = "example") -> Plan:
    (tmp_path / "__main__.py").write_text(source)
    return evaluate(StackFile(stack=stack, config=config or {}), program=tmp_path, project="example")


def test_the_readme_examples_import_from_zbi_infra_only() -> None:
    programs = readme_programs()
    assert len(programs) == 3
    for source in programs:
        imports = [line for line in source.splitlines() if line.startswith(("from zbi_infra", "import zbi_infra"))]
        assert imports and all(line.startswith("from zbi_infra import") for line in imports), imports


def test_a_node_on_a_zbi_cluster_gets_volumes_without_naming_a_storage_class(tmp_path: Path) -> None:
    plan = run_readme_program(readme_programs()[0], tmp_path)
    classes = [manifest(r) for r in plan.of_type("kubernetes:storage.k8s.io/v1:StorageClass")]
    defaults = [c for c in classes if c["metadata"].get("annotations", {}).get(DEFAULT_CLASS) == "true"]
    assert len(defaults) == 1
    (default,) = defaults
    assert default["provisioner"] == "ebs.csi.aws.com" and default["reclaimPolicy"] == "Retain"
    assert default["parameters"]["encrypted"] == "true" and default["parameters"]["kmsKeyId"].startswith("arn:aws:kms:")
    (statefulset,) = [r for r in plan.kubernetes_objects() if r.name == "testnet-zebrad"]
    (claim,) = statefulset.inputs["spec"]["volumeClaimTemplates"]
    assert "storageClassName" not in claim["spec"]  # so the cluster's default class applies
    # ... and no PriorityClass: a class that does not exist would get the pods refused.
    assert "priorityClassName" not in statefulset.inputs["spec"]["template"]["spec"]


def test_the_readme_platform_example_builds_a_stack_from_its_config(tmp_path: Path) -> None:
    dev = find_project(ROOT).stack_file("dev")
    plan = run_readme_program(readme_programs()[1], tmp_path, config=dict(dev.config), stack="dev")
    assert len(plan.of_type("zbi:platform:ZbiPlatform")) == 1
    assert len(plan.of_type("zbi:node:ZcashNode")) == 1 and plan.of_type("aws:dlm/lifecyclePolicy:LifecyclePolicy")


def test_the_readme_local_example_needs_no_aws(tmp_path: Path) -> None:
    plan = run_readme_program(readme_programs()[2], tmp_path)
    types = {r.type for r in plan.resources}
    assert "zbi:node:ZcashNode" in types and not any(t.startswith(("aws:", "eks:")) for t in types)


def test_the_example_installs_zbi_from_its_pyproject(tmp_path: Path) -> None:
    """`pulumi up` in examples/existing-cluster runs `uv sync` there: its pyproject must bring zBI with it."""
    import os
    import subprocess

    from tests.test_first_commands import copy_of_the_repository

    repo = copy_of_the_repository(tmp_path / "repo")
    example = repo / "examples" / "existing-cluster"
    uv = uv_binary()
    assert uv
    # Packages from uv's cache where it has them, else from PyPI (a lock-less resolve needs the index).
    env = {**os.environ, "UV_LINK_MODE": "copy", "UV_COMPILE_BYTECODE": "0"}
    env.pop("VIRTUAL_ENV", None)
    synced = subprocess.run([uv, "sync"], cwd=example, env=env, capture_output=True, text=True, timeout=300)
    assert synced.returncode == 0, synced.stderr[-1500:]
    imported = subprocess.run(
        [str(example / ".venv" / "bin" / "python"), "-c", "import zbi_infra, sys; print(zbi_infra.__file__)"],
        cwd=example,
        env={k: v for k, v in env.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr[-800:]
    assert imported.stdout.strip().startswith(str(repo / "zbi_infra"))  # the repository's own library, by path
