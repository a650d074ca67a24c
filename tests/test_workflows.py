"""GitHub workflows pass GitHub's workflow schema (check-jsonschema) and a security audit (zizmor).

Both tools are development dependencies pinned by uv.lock, so `uv run pytest` brings them in on any machine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed next to this Python: run the tests with `python3 -m uv run pytest`")
    return str(path)


def check_schema(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def audit(*files: Path) -> subprocess.CompletedProcess[str]:
    # --offline: no GitHub API calls; the audits that need none (pinning, injection, permissions) all run.
    return subprocess.run(
        [tool("zizmor"), "--offline", "--format", "plain", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_workflows_match_githubs_schema() -> None:
    assert len(WORKFLOWS) >= 2
    result = check_schema(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_the_security_audit() -> None:
    result = audit(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout + result.stderr


BROKEN = """\
on: pull_request_target
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
"""


def test_the_checks_catch_broken_workflows(tmp_path: Path) -> None:
    unsafe = tmp_path / "unsafe.yml"
    unsafe.write_text(BROKEN)
    findings = audit(unsafe)
    assert findings.returncode != 0
    output = findings.stdout + findings.stderr
    assert "template-injection" in output and "unpinned-uses" in output
    invalid = tmp_path / "invalid.yml"
    invalid.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    result = check_schema(invalid)
    assert result.returncode == 1
    assert "stepz" in result.stdout + result.stderr


def test_every_action_is_pinned_to_a_commit() -> None:
    for workflow in WORKFLOWS:
        for job in yaml.safe_load(workflow.read_text())["jobs"].values():
            for step in job.get("steps", []):
                if "uses" in step:
                    ref = step["uses"].split("@", 1)[1]
                    assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref), step["uses"]


def test_pull_requests_preview_every_cloud_stack_and_plan_every_stack() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())
    jobs = workflow["jobs"]
    assert workflow[True] == {"pull_request": {"branches": ["main"]}}  # YAML 1.1 reads the key `on` as True
    stacks = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
    assert jobs["plan"]["strategy"]["matrix"]["stack"] == stacks
    preview = jobs["preview"]
    cloud = {p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml") if "zbi:role: local" not in p.read_text()}
    assert {m["stack"] for m in preview["strategy"]["matrix"]["include"]} == cloud
    assert preview["permissions"]["id-token"] == "write"
    pulumi_step = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions"))
    assert pulumi_step["with"]["command"] == "preview" and pulumi_step["with"]["comment-on-pr"] is True
    assert pulumi_step["with"]["policyPacks"] == "policy"  # the guardrails, enforced in the real preview
    plan_step = next(s for s in jobs["plan"]["steps"] if "zbi plan" in s.get("run", ""))
    assert "--policy" in plan_step["run"]  # ... and offline, without credentials
    text = (ROOT / ".github" / "workflows" / "pull-request.yml").read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text


def test_the_pull_request_runs_the_readmes_test_command() -> None:
    readme_test_command = (ROOT / "README.md").read_text().split("```sh\n", 1)[1].splitlines()[1]
    assert readme_test_command == "python3 uvw run pytest"  # uvw runs uv; the workflow's setup-uv provides it
    steps = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())["jobs"]["test"]["steps"]
    assert any(s.get("run") == "uv run pytest" for s in steps)


def test_deploys_run_behind_protected_environments() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    job = workflow["jobs"]["up"]
    assert workflow[True] == {"push": {"branches": ["main"]}}
    assert job["environment"] == "${{ matrix.stack }}"
    assert next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions"))["with"]["command"] == "up"


def test_drift_is_detected_hourly_in_every_cloud_stack_and_reconciled_only_by_hand() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "drift.yml").read_text())
    (schedule,) = workflow[True]["schedule"]
    minute, hour, *_ = schedule["cron"].split()
    assert minute.isdigit() and hour == "*"  # at least hourly
    detect = workflow["jobs"]["detect"]
    cloud = {p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml") if "zbi:role: local" not in p.read_text()}
    assert {entry["stack"] for entry in detect["strategy"]["matrix"]["include"]} == cloud
    preview = next(s for s in detect["steps"] if s.get("uses", "").startswith("pulumi/actions"))["with"]
    assert preview["command"] == "preview" and preview["refresh"] is True and preview["expect-no-changes"] is True
    assert detect["environment"] == "drift" and detect["permissions"]["issues"] == "write"
    report = next(s for s in detect["steps"] if s.get("name") == "Report drift in one issue per stack")
    assert "${{" not in report["run"]  # inputs reach the script through env, never spliced into it
    reconcile = workflow["jobs"]["reconcile"]
    assert workflow[True]["workflow_dispatch"]["inputs"]["reconcile"]["options"] == ["", *sorted(cloud)]
    assert reconcile["environment"] == "${{ inputs.reconcile }}" and "issues" not in reconcile["permissions"]
    up = next(s for s in reconcile["steps"] if s.get("uses", "").startswith("pulumi/actions"))["with"]
    assert up["command"] == "up" and up["refresh"] is True and up["policyPacks"] == "policy"


# ---- credentials: branch code never holds deploy credentials ------------------------------------------------------

DEPLOY_SECRETS = {"PULUMI_ACCESS_TOKEN", "ZBI_AWS_DEPLOY_ROLE_ARN"}


def secrets_of(job: dict) -> set[str]:
    import re

    return set(re.findall(r"secrets\.([A-Z0-9_]+)", yaml.safe_dump(job)))


def test_no_job_runs_code_next_to_deploy_credentials_without_an_environment() -> None:
    """Credentials come from environments (their secrets, their OIDC subject), never from a job anyone's branch
    can run: pull requests get only the reviewed, read-only `preview` environment; deploy credentials only jobs
    behind the `dev`/`dr` environments, which only `main` may use."""
    for workflow in WORKFLOWS:
        parsed = yaml.safe_load(workflow.read_text())
        for name, job in parsed["jobs"].items():
            held = secrets_of(job) - {"GITHUB_TOKEN", "PULUMI_ORG"}
            oidc = (job.get("permissions") or {}).get("id-token") == "write"
            if held or oidc:
                assert "environment" in job, (workflow.name, name, held)
            if held & DEPLOY_SECRETS:
                assert job["environment"] in ("${{ matrix.stack }}", "${{ inputs.reconcile }}"), (workflow.name, name)
                assert True not in parsed or "pull_request" not in parsed[True], (workflow.name, name)
    preview = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())["jobs"]["preview"]
    assert preview["environment"] == "preview"
    assert secrets_of(preview) & DEPLOY_SECRETS == set()
    assert {"PULUMI_PREVIEW_TOKEN", "ZBI_AWS_PREVIEW_ROLE_ARN"} <= secrets_of(preview)


def test_tests_run_in_jobs_without_credentials() -> None:
    for workflow in WORKFLOWS:
        for name, job in yaml.safe_load(workflow.read_text())["jobs"].items():
            runs_tests = any("pytest" in str(step.get("run", "")) for step in job.get("steps", []))
            if runs_tests:
                assert not secrets_of(job) and "environment" not in job, (workflow.name, name)
                assert (job.get("permissions") or {}).get("id-token") != "write", (workflow.name, name)
    deploy = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())["jobs"]
    assert deploy["up"]["needs"] == "test"


def test_a_workflow_that_hands_deploy_credentials_to_tests_fails_the_check() -> None:
    job = {"steps": [{"run": "uv run pytest"}, {"env": {"T": "${{ secrets.PULUMI_ACCESS_TOKEN }}"}}]}
    assert secrets_of(job) == {"PULUMI_ACCESS_TOKEN"}


def codeowners_owner(path: str, rules: list[tuple[str, list[str]]]) -> list[str]:
    """GitHub's CODEOWNERS semantics for the patterns zBI writes: the last matching line wins."""
    import fnmatch

    owners: list[str] = []
    for pattern, who in rules:
        if pattern == "*":
            hit = True
        elif pattern.endswith("/"):
            hit = ("/" + path).startswith(pattern)
        else:
            hit = fnmatch.fnmatchcase("/" + path, pattern)
        if hit:
            owners = who
    return owners


def test_codeowners_gives_every_file_an_owner_and_the_platform_everything_but_access_files() -> None:
    lines = (ROOT / ".github" / "CODEOWNERS").read_text().splitlines()
    rules = [(line.split()[0], line.split()[1:]) for line in lines if line.strip() and not line.startswith("#")]
    assert rules[0] == ("*", ["@zbi-example/platform-admins"])  # the catch-all first
    for must in ("/pyproject.toml", "/uv.lock", "/tests/", "/.ci/", "/tools/"):
        assert must in dict(rules), must
    skip = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
    for file in ROOT.rglob("*"):
        relative = file.relative_to(ROOT)
        if file.is_dir() or skip & set(relative.parts):
            continue
        owners = codeowners_owner(relative.as_posix(), rules)
        if relative.parts[0] == "access" and owners != ["@zbi-example/platform-admins"]:
            continue  # an instance's access file: its owners'
        assert owners == ["@zbi-example/platform-admins"], relative
    assert codeowners_owner("uv.lock", [("*", ["a"]), ("/uv.lock", ["b"])]) == ["b"]
    assert codeowners_owner("tests/x.py", [("/tests/", ["t"]), ("*", ["a"])]) == ["a"]


def test_the_policy_packs_requirements_are_pinned_with_hashes_and_match_the_lock() -> None:
    import tomllib

    text = (ROOT / "policy" / "requirements.txt").read_text()
    pins = [line.split(" ")[0] for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert pins and all("==" in pin for pin in pins), pins
    assert text.count("--hash=sha256:") >= len(pins)
    locked = {p["name"]: p["version"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    pinned = dict(pin.split("==") for pin in pins)
    assert pinned["pulumi-policy"] == locked["pulumi-policy"] and pinned["pulumi"] == locked["pulumi"]


def test_the_pull_request_shows_the_plan_difference_with_its_base_branch() -> None:
    plan_job = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())["jobs"]["plan"]
    checkout = next(s for s in plan_job["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # git archive needs the base commit
    (step,) = [s for s in plan_job["steps"] if "--diff" in s.get("run", "")]
    assert step["env"]["BASE_REF"] == "${{ github.base_ref }}" and "${{" not in step["run"]  # no template injection
    assert 'zbi plan "${STACK}" --diff "origin/${BASE_REF}"' in step["run"] and "GITHUB_STEP_SUMMARY" in step["run"]
