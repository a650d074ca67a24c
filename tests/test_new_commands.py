"""`zbi init`, `zbi access init`, `zbi endpoints` and `zbi plan --diff`, run as a user runs them."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_first_commands import copy_of_the_repository
from zbi_infra.cli import main
from zbi_infra.config.access import light_wallet_service, read_access_file
from zbi_infra.config.resources import cpu_millis, memory_mib


def project_with(tmp_path: Path, *stacks: str) -> Path:
    """A project directory running this repository's program, with some of its stack files."""
    (tmp_path / "Pulumi.yaml").write_text(
        (ROOT / "Pulumi.yaml").read_text().replace("main: stacks/", f"main: {ROOT}/stacks/")
    )
    for stack in stacks:
        shutil.copy(ROOT / f"Pulumi.{stack}.yaml", tmp_path)
    return tmp_path


def pod_requests(plan_json: dict) -> tuple[float, float, float]:
    """(CPU, GiB of memory, GiB of volumes) the instance namespaces' workloads ask for, counted here independently."""
    cpu = memory = volumes = 0.0
    for r in plan_json["resources"]:
        if r["type"] not in ("kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:Deployment"):
            continue
        if not r["inputs"]["metadata"]["namespace"].startswith("zbi-"):
            continue
        spec = r["inputs"]["spec"]
        for c in spec["template"]["spec"]["containers"]:
            cpu += spec["replicas"] * cpu_millis(c["resources"]["requests"]["cpu"]) / 1000
            memory += spec["replicas"] * memory_mib(c["resources"]["requests"]["memory"]) / 1024
        for claim in spec.get("volumeClaimTemplates", []):
            volumes += spec["replicas"] * float(claim["spec"]["resources"]["requests"]["storage"].removesuffix("Gi"))
    return cpu, memory, volumes


@pytest.mark.parametrize("aws", [False, True])
def test_init_writes_a_stack_that_plans_with_the_footprint_it_states(tmp_path: Path, capsys, aws: bool) -> None:
    project = project_with(tmp_path)
    assert main(["init", "small", "--project-dir", str(project), *(["--aws"] if aws else [])]) == 0
    text = (project / "Pulumi.small.yaml").read_text()
    config = yaml.safe_load(text)["config"]
    (instance,) = config["zbi:instances"].values()
    assert instance["network"] == "testnet" and instance["node"]["replicas"] == 1
    assert instance["lightwallet"]["kind"] == "lightwalletd"
    assert (config["zbi:role"] == "primary") is aws
    capsys.readouterr()
    assert main(["plan", "small", "--json", "--project-dir", str(project)]) == 0
    planned = json.loads(capsys.readouterr().out)
    types = {r["type"] for r in planned["resources"]}
    assert ("eks:index:Cluster" in types) is aws
    # What the header describes and nothing more: the repository's access files name other instances, no gateway.
    assert not any(r["name"].endswith("-gateway") for r in planned["resources"] if "Deployment" in r["type"])
    cpu, memory, volumes = pod_requests(planned)
    assert f"request {cpu:g} CPU, {memory:.2f} GiB of memory and {volumes:g} GiB of volumes" in text
    if aws:
        assert main(["cost", "small", "--json", "--project-dir", str(project)]) == 0
        monthly = json.loads(capsys.readouterr().out)["monthlyUsd"]["onDemand"]
        assert f"About ${monthly:,.0f} a month on demand" in text
    # A second init keeps the file as it is.
    assert main(["init", "small", "--project-dir", str(project)]) == 2
    assert (project / "Pulumi.small.yaml").read_text() == text


def test_access_init_writes_a_valid_commented_file_and_suggests_a_declared_name(tmp_path: Path, capsys) -> None:
    project = project_with(tmp_path, "dev", "local")
    assert main(["access", "init", "testnte", "--project-dir", str(project)]) == 2
    assert "did you mean 'testnet'?" in capsys.readouterr().err
    assert not (project / "access").exists()
    assert main(["access", "init", "regnet", "--project-dir", str(project)]) == 0
    path = project / "access" / "regnet.yaml"
    text = path.read_text()
    assert text.startswith("# Access to instance `regnet` (stack local)") and "# anonymous:" in text
    access = read_access_file(path)
    assert access.users == [] and access.anonymous is None
    assert access.grpc.methods == list(light_wallet_service()[1])
    # ... which `zbi access check` accepts and `create-key` edits.
    assert main(["access", "check", "regnet", "--project-dir", str(project)]) == 0
    assert main(["access", "create-key", "regnet", "alice", "--project-dir", str(project)]) == 0
    assert [u.name for u in read_access_file(path).users] == ["alice"]
    assert main(["access", "init", "regnet", "--project-dir", str(project)]) == 2  # kept


def test_endpoints_give_commands_whose_protos_compile_and_whose_names_the_certificate_covers(capsys) -> None:
    assert main(["endpoints", "dev", "--json"]) == 0
    (testnet,) = json.loads(capsys.readouterr().out)
    assert testnet["public"] and testnet["address"] == "testnet.lwd.zbi.example:443" and testnet["front"] == "gateway"
    assert main(["endpoints", "local", "--json"]) == 0
    (regnet,) = json.loads(capsys.readouterr().out)
    assert not regnet["public"] and regnet["address"] == "localhost:9067"
    assert "port-forward svc/lightwalletd-grpc 9067:9067" in regnet["commands"]["port-forward"]
    assert "caCertPem" in (ROOT / "stacks" / "__main__.py").read_text()  # the output the CA command reads
    for endpoint, keyed in ((testnet, True), (regnet, False)):
        grpc = shlex.split(endpoint["commands"]["grpc"])
        assert grpc[grpc.index("-cacert") + 1] == endpoint["ca_file"] and endpoint["ca"].endswith(endpoint["ca_file"])
        assert ("authorization: Bearer <KEY>" in grpc) is keyed
        import_path, proto = grpc[grpc.index("-import-path") + 1], grpc[grpc.index("-proto") + 1]
        # The protos the command names compile, and declare the method it calls.
        compiled = subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"-I{import_path}", "--descriptor_set_out=/dev/null", proto],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert compiled.returncode == 0, compiled.stderr
        service, method = grpc[-1].rsplit("/", 1)
        assert method in (ROOT / import_path / proto).read_text() and service.endswith("CompactTxStreamer")
    curl = shlex.split(testnet["commands"]["json-rpc"])
    assert curl[curl.index("--cacert") + 1] == testnet["ca_file"] and "<USER>:<KEY>" in curl
    assert json.loads(curl[curl.index("-d") + 1])["method"] == "getblockchaininfo"
    # The names the clients check are on the instance's certificate (the plan's certificate request).
    from zbi_infra.commands.endpoints import _certificate_names
    from zbi_infra.plan.engine import evaluate
    from zbi_infra.plan.project import find_project

    project = find_project(ROOT)
    for stack, endpoint in (("dev", testnet), ("local", regnet)):
        plan = evaluate(project.stack_file(stack), program=project.main, project=project.name)
        assert endpoint["server_name"] in _certificate_names(plan, endpoint["instance"])


@pytest.mark.slow
def test_plan_diff_shows_what_a_stack_edit_adds_changes_and_costs(tmp_path: Path) -> None:
    repo = copy_of_the_repository(tmp_path / "repo")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    stack = repo / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("        replicas: 2\n", "        replicas: 3\n", 1))
    result = subprocess.run(
        [sys.executable, "-m", "zbi_infra.cli", "plan", "dev", "--diff", "HEAD", "--project-dir", str(repo)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "to change" in out
    changed = [line for line in out.splitlines() if line.startswith("  ~ ")]
    assert any("StatefulSet  testnet-zebrad" in line and "spec.replicas" in line for line in changed), out
    assert not any(line.startswith(("  + ", "  - ")) for line in out.splitlines())
    before, after = (
        float(x.strip("$").replace(",", "")) for x in out.split("on demand): ")[1].split(" (")[0].split(" -> ")
    )
    assert after > before  # a third replica's volume costs money
    bad = subprocess.run(
        [sys.executable, "-m", "zbi_infra.cli", "plan", "dev", "--diff", "no-such-ref", "--project-dir", str(repo)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "not a commit" in bad.stderr
    empty = main(["plan", "dev", "--diff", "", "--project-dir", str(repo)])
    assert empty == 2  # an empty ref is not "no diff"


def test_plan_diff_says_when_the_stack_is_new_at_the_other_commit() -> None:
    from zbi_infra.commands.plan_diff import report

    changes = {"added": [{"type": "kubernetes:core/v1:Namespace", "name": "x"}], "changed": [], "removed": []}
    assert "does not exist at main: the whole stack is new" in report("lab", "main", "abc", changes, (None, 1.0),
                                                                       new_stack=True)  # fmt: skip
    assert "whole stack is new" not in report("lab", "main", "abc", changes, (None, 1.0))


def test_endpoints_with_a_publicly_trusted_certificate_need_no_ca(plan_stack, project) -> None:
    from zbi_infra.commands.endpoints import endpoints
    from zbi_infra.config import load_stack_config

    merge = {"zbi:dns": {"hostedZoneId": "Z0123456789ABCDEFGHIJ"},
             "zbi:instances": {"testnet": {"endpoints": {"publicTls": {"provider": "acm"}}}}}  # fmt: skip
    values = {**project.stack_file("dev").config, **merge}
    values["zbi:instances"] = {"testnet": {**project.stack_file("dev").config["zbi:instances"]["testnet"]}}
    values["zbi:instances"]["testnet"]["endpoints"] = {
        **values["zbi:instances"]["testnet"]["endpoints"],
        "publicTls": {"provider": "acm"},
    }
    (testnet,) = endpoints(
        plan_stack("dev", merge=merge), load_stack_config(values), stack="dev", access={"testnet": 1}
    )
    assert testnet.ca_file == "" and "publicly trusted" in testnet.ca
    assert all("-cacert" not in c and "--cacert" not in c for c in testnet.commands.values())
