"""`zbi instance add/remove` change the instance's lines and nothing else, byte for byte, and keep the stack file's
mode, owner and symbolic link."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from tests.conftest import ROOT
from zbi_infra.cli import main
from zbi_infra.config.stack_file import read_stack_file

HAND_LAID = """# A stack laid out by hand: odd spacing, long flow lists, comments everywhere.
config:
  zbi:role: local
  zbi:local: {storageClass: standard}   # the kind cluster's
  zbi:instances:
    # the regtest pair
    a:
      network: regtest
      node:   {replicas: 2}   # two, as regtest needs
      endpoints: {hostnames: [a.example.com, b.example.com, c.example.com, d.example.com, e.example.com, f.example.com, g.example.com]}

  # trailing comment about the stack
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "Pulumi.t.yaml").write_text(HAND_LAID)
    return tmp_path


def zbi(project: Path, *args: str) -> int:
    return main([*args, "--project-dir", str(project)])


def test_add_then_remove_touches_only_the_instances_lines(project: Path) -> None:
    path = project / "Pulumi.t.yaml"
    assert zbi(project, "instance", "add", "t", "b", "--network", "regtest", "--hostname", "z.example.com") == 0
    added = path.read_text()
    cut = HAND_LAID.index("\n\n  # trailing") + 1  # after a's last line; the blank line and comment stay below
    entry = "    b:\n      network: regtest\n      endpoints:\n        hostnames: [z.example.com]\n"
    assert added == HAND_LAID[:cut] + entry + HAND_LAID[cut:]
    assert list(read_stack_file("t", path).config["zbi:instances"]) == ["a", "b"]
    assert zbi(project, "instance", "remove", "t", "b", "--yes") == 0
    assert path.read_text() == HAND_LAID


def test_removing_the_last_instance_removes_only_its_block(project: Path) -> None:
    path = project / "Pulumi.t.yaml"
    assert zbi(project, "instance", "remove", "t", "a", "--yes") == 0
    text = path.read_text()
    assert "zbi:instances" not in read_stack_file("t", path).config
    assert text.startswith(HAND_LAID[: HAND_LAID.index("  zbi:instances:")])
    assert text.endswith("\n  # trailing comment about the stack\n")


def test_the_files_mode_owner_and_link_survive_an_edit(project: Path) -> None:
    shared = project / "shared"
    shared.mkdir()
    target = shared / "Pulumi.t.yaml"
    (project / "Pulumi.t.yaml").rename(target)
    (project / "Pulumi.t.yaml").symlink_to(target)
    target.chmod(0o640)
    import os

    os.chown(target, 4321, 4321)
    assert zbi(project, "instance", "add", "t", "b", "--network", "regtest") == 0
    assert (project / "Pulumi.t.yaml").is_symlink()
    info = target.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640 and (info.st_uid, info.st_gid) == (4321, 4321)
    assert "b" in read_stack_file("t", target).config["zbi:instances"]
    target.chmod(0o440)
    before = target.read_bytes()
    assert zbi(project, "instance", "add", "t", "c", "--network", "regtest") == 2  # read-only: refused
    assert target.read_bytes() == before
