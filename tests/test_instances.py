"""`zbi instance`: the platform administrator's commands, run on copies of the stack files, checked in the file
they write and in the plan that follows."""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT
from zbi_infra.cli import main


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ["Pulumi.yaml", *(p.name for p in ROOT.glob("Pulumi.*.yaml"))]:
        shutil.copy(ROOT / name, tmp_path / name)
    for directory in ("stacks", "access"):
        shutil.copytree(ROOT / directory, tmp_path / directory)
    return tmp_path


def zbi(project: Path, *args: str) -> int:
    return main([*args[:3], *args[3:], "--project-dir", str(project)])


ADD = ["instance", "add", "dev", "explorer", "--network", "testnet", "--replicas", "3", "--storage-gib", "300",
       "--lightwallet", "zaino", "--no-public-grpc", "--owner", "@zbi-example/explorer"]  # fmt: skip


def test_add_writes_the_instance_keeps_comments_and_the_plan_follows(project: Path, capsys) -> None:
    before = (project / "Pulumi.dev.yaml").read_text()
    assert zbi(project, *ADD) == 0
    after = (project / "Pulumi.dev.yaml").read_text()
    # Everything that was there is still there, comments included, in its order.
    changes = difflib.SequenceMatcher(None, before.splitlines(), after.splitlines()).get_opcodes()
    assert {tag for tag, *_ in changes} == {"equal", "insert"}
    assert "# they own access/testnet.yaml" in after
    capsys.readouterr()
    assert zbi(project, "instance", "show", "dev", "explorer", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["node"]["replicas"] == 3 and shown["node"]["storage"]["sizeGib"] == 300
    assert shown["lightwallet"]["kind"] == "zaino" and shown["lightwallet"]["minReplicas"] == 2  # a default
    assert shown["owners"] == ["@zbi-example/explorer"]
    assert main(["plan", "dev", "--json", "--project-dir", str(project)]) == 0
    plan = json.loads(capsys.readouterr().out)
    names = {(r["type"], r["inputs"].get("metadata", {}).get("namespace"), r["inputs"].get("metadata", {}).get("name"))
             for r in plan["resources"]}  # fmt: skip
    assert ("kubernetes:apps/v1:StatefulSet", "zbi-explorer", "zebrad") in names
    assert ("kubernetes:apps/v1:StatefulSet", "zbi-explorer", "zaino") in names


def test_add_then_remove_gives_back_the_same_file(project: Path, capsys) -> None:
    original = (project / "Pulumi.dev.yaml").read_text()
    assert zbi(project, *ADD) == 0
    assert zbi(project, "instance", "remove", "dev", "explorer", "--yes") == 0
    assert (project / "Pulumi.dev.yaml").read_text() == original


def test_dry_run_prints_the_diff_and_writes_nothing(project: Path, capsys) -> None:
    original = (project / "Pulumi.dev.yaml").read_text()
    assert zbi(project, *ADD, "--dry-run") == 0
    diff = capsys.readouterr().out
    assert diff.startswith("--- a/Pulumi.dev.yaml") and "+    explorer:" in diff and "+      network: testnet" in diff
    assert (project / "Pulumi.dev.yaml").read_text() == original


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--network", "testnet"], "testnet already exists"),
        # A hostname another instance serves: the same model as `zbi plan` refuses it.
        (["--network", "testnet", "--public-grpc", "--hostname", "testnet.lwd.zbi.example"], "testnet.lwd.zbi.example"),
        # zcashd is end of life everywhere but regtest.
        (["--network", "testnet", "--node", "zcashd"], "zcashd"),
    ],
)
def test_an_invalid_edit_is_refused_and_writes_nothing(project: Path, capsys, args: list[str], message: str) -> None:
    original = (project / "Pulumi.dev.yaml").read_text()
    name = "testnet" if "already exists" in message else "other"
    assert zbi(project, "instance", "add", "dev", name, *args) == 2
    assert message in capsys.readouterr().err
    assert (project / "Pulumi.dev.yaml").read_text() == original


def test_remove_needs_yes_and_says_what_is_retained(project: Path, capsys) -> None:
    original = (project / "Pulumi.dev.yaml").read_text()
    assert zbi(project, "instance", "remove", "dev", "testnet") == 2
    err = capsys.readouterr().err
    assert "needs --yes" in err and "data-zebrad-0, data-zebrad-1" in err and "us-west-2" in err
    assert (project / "Pulumi.dev.yaml").read_text() == original
    assert zbi(project, "instance", "remove", "dev", "nope", "--yes") == 2
    assert "has no instance 'nope' (it has: testnet)" in capsys.readouterr().err


def test_list_and_a_dr_stack_that_owns_no_instances(project: Path, capsys) -> None:
    assert zbi(project, "instance", "list", "dev", "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row == {"name": "testnet", "network": "testnet", "node": "zebrad", "replicas": 2, "storageGib": 100,
                   "lightwallet": "lightwalletd", "publicGrpc": True, "hostnames": ["testnet.lwd.zbi.example"]}  # fmt: skip
    assert zbi(project, "instance", "add", "dr", "x", "--network", "testnet") == 2
    assert "DR stack" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["instance", "add", "dev", "x", "--network", "mainnet2"],
        ["instance", "add", "dev", "x", "--network", "testnet", "--replicas", "0"],
        ["instance", "add", "dev", "Bad_Name", "--network", "testnet"],
        ["instance", "add", "dev", "x"],
        ["instance", "frobnicate", "dev"],
    ],
)
def test_bad_arguments_exit_2(project: Path, capsys, args: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        zbi(project, *args)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_help_has_examples(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["instance", "add", "--help"])
    assert "zbi instance add dev testnet-2" in capsys.readouterr().out  # tests/test_first_hour.py runs it
