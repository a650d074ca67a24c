"""What a new user hits in their first hour (issue 22): each crash or misleading line, run as the user runs it."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.conftest import ROOT
from zbi_infra.cli import EXIT_BROKEN_PIPE, INSTANCE_EXAMPLES, _check_policies, main
from zbi_infra.config import load_stack_config
from zbi_infra.config.instance import DEFAULT_GATEWAY_ENGINE
from zbi_infra.errors import ConfigError
from zbi_infra.kube import image_ref
from zbi_infra.releases import GATEWAY_ENGINE_IMAGES, LIGHTWALLETD, ZEBRAD


def test_zbi_stacks_lists_every_stack_file(capsys) -> None:
    assert main(["stacks"]) == 0
    listed = capsys.readouterr().out.split()
    assert listed == sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
    assert main(["stacks", "--project-dir", str(ROOT)]) == 0


@pytest.mark.parametrize("command", [["cost", "dev"], ["instance", "show", "dev", "testnet"]])
def test_a_reader_that_leaves_early_ends_the_command_quietly(command: list[str]) -> None:
    # `zbi cost dev | head -0`: the pipe's reading end is gone before zbi writes a byte.
    process = subprocess.Popen(
        [sys.executable, "-m", "zbi_infra.cli", *command],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == EXIT_BROKEN_PIPE
    assert stderr == "" or "Bytecode" in stderr, stderr  # no "internal error", no traceback


def test_plan_out_reports_the_number_of_manifests_it_wrote(tmp_path: Path, capsys) -> None:
    assert main(["plan", "dev", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    written = len(list((tmp_path / "manifests").glob("*.yaml")))
    assert f"and {written} manifests to" in out
    releases = sum(1 for r in json.loads((tmp_path / "plan.json").read_text())["resources"] if "helm.sh" in r["type"])
    assert releases and f"(and {releases} Helm releases" in out


def test_one_violation_is_singular(capsys) -> None:
    key = SimpleNamespace(type="aws:kms/key:Key", name="k", inputs={"enableKeyRotation": False}, urn="urn:k")
    assert _check_policies(SimpleNamespace(resources=[key])) == 3
    assert ": 1 violation\n" in capsys.readouterr().err
    assert _check_policies(SimpleNamespace(resources=[key, key])) == 3
    assert ": 2 violations\n" in capsys.readouterr().err


def test_instance_show_names_the_images_that_will_run(plan_stack, capsys) -> None:
    assert main(["instance", "show", "dev", "testnet", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    node, lightwallet, gateway = (shown[tier]["image"] for tier in ("node", "lightwallet", "gateway"))
    assert (node["repository"], node["tag"]) == (ZEBRAD.repository, ZEBRAD.tag)
    assert (lightwallet["repository"], lightwallet["tag"]) == (LIGHTWALLETD.repository, LIGHTWALLETD.tag)
    front = GATEWAY_ENGINE_IMAGES[DEFAULT_GATEWAY_ENGINE]
    assert (gateway["repository"], gateway["tag"]) == (front.repository, front.tag)
    # ... which is what the plan's pods run.
    images = {
        c["image"]
        for r in plan_stack("dev").of_type("kubernetes:apps/v1:StatefulSet")
        if r.inputs["metadata"]["namespace"] == "zbi-testnet"
        for c in r.inputs["spec"]["template"]["spec"]["containers"]
    }
    assert image_ref(node["repository"], node["tag"], node["digest"]) in images
    assert image_ref(lightwallet["repository"], lightwallet["tag"], lightwallet["digest"]) in images
    assert node["digest"] and gateway["digest"] is None  # zebra's is in the digest table, OpenResty's not yet


def test_roles_of_a_dr_stack_are_its_primarys(capsys) -> None:
    assert main(["roles", "dev"]) == 0
    primary = capsys.readouterr().out
    assert main(["roles", "dr"]) == 0
    captured = capsys.readouterr()
    assert captured.out == primary and "recovers dev" in captured.err


def test_roles_of_a_local_stack_ask_only_for_instance_owners(tmp_path: Path, capsys) -> None:
    assert main(["roles", "local"]) == 2
    err = capsys.readouterr().err
    assert "zbi:instances.{regnet}.owners" in err and "zbi:cluster.admins" not in err
    config = yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())["config"]
    config["zbi:instances"]["regnet"]["owners"] = ["@org/regnet-admins"]
    from zbi_infra.roles import codeowners_block

    block = codeowners_block("local", load_stack_config(config))
    assert "/access/regnet.yaml @org/regnet-admins" in block and "/zbi_infra/" not in block


def test_the_commented_endpoint_line_of_the_dev_stack_is_valid_when_uncommented() -> None:
    lines = (ROOT / "Pulumi.dev.yaml").read_text().splitlines()
    (index,) = [i for i, line in enumerate(lines) if line.lstrip().startswith("# endpoint:")]
    line = lines[index]
    lines[index] = line.replace("# ", "", 1)  # what a user does: delete the comment marker
    config = yaml.safe_load("\n".join(lines))["config"]
    assert config["zbi:cluster"]["endpoint"]["publicAccess"] is True  # nested where it belongs
    with pytest.raises(ConfigError, match=r"zbi:cluster\.endpoint\.publicAccessCidrs"):
        load_stack_config(config)  # the placeholder itself is refused, naming the key ...
    config["zbi:cluster"]["endpoint"]["publicAccessCidrs"] = ["8.8.4.0/24"]
    stack = load_stack_config(config)  # ... and a real public range in its place is accepted
    assert stack.cluster is not None and stack.cluster.endpoint.public_access is True


def test_the_examples_in_instance_help_run(tmp_path: Path) -> None:
    commands = [line.strip() for line in INSTANCE_EXAMPLES.splitlines() if line.strip().startswith("zbi ")]
    text = INSTANCE_EXAMPLES.replace("\\\n", "")
    add = next(line.strip() for line in text.splitlines() if line.strip().startswith("zbi instance add"))
    assert "--dry-run" in add
    assert main(shlex.split(add)[1:]) == 0  # validated as `zbi plan` validates; nothing written
    for command in commands:
        if command.startswith(("zbi instance list", "zbi instance show")):
            assert main(shlex.split(command)[1:]) == 0
