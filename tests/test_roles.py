"""Roles as code: the CODEOWNERS block comes from the stack config, next to the IAM principals that drive EKS
access, and the committed file matches what the config says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT, PlanStack
from zbi_infra.cli import main
from zbi_infra.config import load_stack_config
from zbi_infra.config.stack_file import read_stack_file
from zbi_infra.errors import ConfigError
from zbi_infra.roles import BEGIN, END, codeowners_block, with_block


def dev_config(**patch: object):
    raw = read_stack_file("dev", ROOT / "Pulumi.dev.yaml").config
    return load_stack_config({**raw, **patch})


def test_the_committed_codeowners_is_what_the_dev_config_says() -> None:
    committed = (ROOT / ".github" / "CODEOWNERS").read_text()
    assert codeowners_block("dev", dev_config()) in committed


def test_platform_admins_own_the_platform_and_instance_admins_their_access_files() -> None:
    lines = codeowners_block("dev", dev_config()).splitlines()
    owners = {line.split()[0]: line.split()[1:] for line in lines if not line.startswith("#")}
    assert owners["/zbi_infra/"] == ["@zbi-example/platform-admins"] == owners["/Pulumi.*.yaml"]
    assert owners["/access/testnet.yaml"] == ["@zbi-example/testnet-admins"]
    # CODEOWNERS: the last matching line wins, so instance lines come after the platform's.
    paths = [line.split()[0] for line in lines if not line.startswith("#")]
    assert paths.index("/access/testnet.yaml") > paths.index("/.github/")
    # Every access file in the repository belongs to an instance whose owners the block names.
    for access_file in (ROOT / "access").glob("*.yaml"):
        assert f"/access/{access_file.name}" in owners


def test_the_block_replaces_itself_and_keeps_the_rest() -> None:
    block = codeowners_block("dev", dev_config())
    assert with_block("", block) == block
    text = with_block("* @someone\n", block)
    assert text.startswith("* @someone\n\n") and text.endswith(block)
    stale = text.replace("@zbi-example/testnet-admins", "@old/team") + "/docs/ @writers\n"
    updated = with_block(stale, block)
    assert "@old/team" not in updated and updated.count(BEGIN) == 1 and updated.endswith("/docs/ @writers\n")
    assert with_block(updated, block) == updated
    with pytest.raises(ConfigError, match="without"):
        with_block(f"{BEGIN}\n/x @y\n", block)


def test_no_github_owner_for_the_platform_is_an_error_with_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    raw = read_stack_file("dev", ROOT / "Pulumi.dev.yaml").config
    cluster = dict(raw["zbi:cluster"])
    cluster["admins"] = [{k: v for k, v in a.items() if k != "github"} for a in cluster["admins"]]
    with pytest.raises(ConfigError, match=re.escape("zbi:cluster.admins: no admin has a `github` owner")):
        codeowners_block("dev", load_stack_config({**raw, "zbi:cluster": cluster}))


@pytest.mark.parametrize("owner", ["zbi-example/team", "@", "@a b", "@org/team/extra"])
def test_bad_owners_name_their_key(owner: str) -> None:
    raw = read_stack_file("dev", ROOT / "Pulumi.dev.yaml").config
    instances = {"testnet": {**raw["zbi:instances"]["testnet"], "owners": [owner]}}
    with pytest.raises(ConfigError, match=re.escape("zbi:instances.testnet.owners[0]")):
        load_stack_config({**raw, "zbi:instances": instances})


def test_the_command_writes_the_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "CODEOWNERS"
    target.write_text("# ours\n* @someone\n")
    assert main(["roles", "dev", "--write", "--file", str(target), "--project-dir", str(ROOT)]) == 0
    text = target.read_text()
    assert text.startswith("# ours\n* @someone\n") and END in text
    assert main(["roles", "dev", "--project-dir", str(ROOT)]) == 0
    assert capsys.readouterr().out in text
    assert main(["roles", "nosuchstack", "--project-dir", str(ROOT)]) == 2


def test_owners_change_nothing_in_the_plan(plan_stack: PlanStack) -> None:
    """GitHub owners are repository metadata: the dev plan is the same with and without them."""
    plain = plan_stack("dev", merge={"zbi:instances": {"testnet": {"owners": []}}})
    assert sorted(r.urn for r in plain.resources) == sorted(r.urn for r in plan_stack("dev").resources)
