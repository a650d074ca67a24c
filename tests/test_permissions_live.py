"""Read-only directories and unreadable files, as a user without the permission meets them.

The suite runs as root, whose CAP_DAC_OVERRIDE ignores file modes; each command here runs in a child whose bounding
set drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (util-linux `setpriv`), so the modes apply to it as to any user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SETPRIV = shutil.which("setpriv")


def zbi_without_override(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "zbi_infra.cli", *args, "--project-dir", str(ROOT)]
    if os.geteuid() == 0:
        if SETPRIV is None:
            pytest.fail("setpriv (util-linux) is needed to drop root's permission override")
        command = [SETPRIV, "--bounding-set=-dac_override,-dac_read_search", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_the_child_really_meets_file_modes(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    probe = [sys.executable, "-c", f"open({str(locked / 'x')!r}, 'w')"]
    if os.geteuid() == 0:
        probe = [str(SETPRIV), "--bounding-set=-dac_override,-dac_read_search", *probe]
    assert subprocess.run(probe, capture_output=True, timeout=60).returncode != 0


def test_an_edit_in_a_read_only_directory_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    target = directory / "testnet.yaml"
    shutil.copy(ROOT / "access" / "testnet.yaml", target)
    before = target.read_bytes()
    directory.chmod(0o555)
    try:
        result = zbi_without_override("access", "create-key", "testnet", "bob", "--file", str(target))
    finally:
        directory.chmod(0o755)
    assert result.returncode == 2, result.stderr
    assert "Permission denied" in result.stderr and "Fix: make" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""  # no key printed for a user never written
    assert target.read_bytes() == before and sorted(p.name for p in directory.iterdir()) == ["testnet.yaml"]


@pytest.mark.parametrize("action", ["check", "list"])
def test_an_unreadable_access_file_exits_2_naming_it(tmp_path: Path, action: str) -> None:
    target = tmp_path / "testnet.yaml"
    shutil.copy(ROOT / "access" / "testnet.yaml", target)
    target.chmod(0o000)
    result = zbi_without_override("access", action, "testnet", "--file", str(target))
    assert result.returncode == 2, result.stderr
    assert f"{target}: cannot be read (Permission denied)" in result.stderr and "Fix:" in result.stderr


def test_plan_out_into_a_read_only_directory_exits_2_before_writing(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir(mode=0o555)
    result = zbi_without_override("plan", "dev", "--out", str(directory / "out"))
    assert result.returncode == 2, result.stderr
    assert "--out" in result.stderr and "not writable" in result.stderr
    assert list(directory.iterdir()) == []
