"""Several editors at once lose nothing: `zbi access create-key` and `zbi instance add` run as separate processes at
the same moment, and every update is in the file afterwards. A second editor says it waits; a stuck one is named."""

from __future__ import annotations

import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from zbi_infra.access_keys import key_hash
from zbi_infra.config.access import read_access_file
from zbi_infra.config.stack_file import read_stack_file
from zbi_infra.errors import ConfigError
from zbi_infra.yaml_roundtrip import locked

TIMEOUT = 120


def project_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "access", tmp_path / "access")
    for file in ROOT.glob("Pulumi*.yaml"):
        shutil.copy(file, tmp_path / file.name)
    return tmp_path


def start(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "zbi_infra.cli", *args],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(processes: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    results = []
    for process in processes:
        out, err = process.communicate(timeout=TIMEOUT)
        results.append((process.returncode, out, err))
    return results


def test_eight_simultaneous_create_keys_all_land(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    users = [f"user-{i}" for i in range(8)]
    results = finish([start(project, "access", "create-key", "testnet", user) for user in users])
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    access = read_access_file(project / "access" / "testnet.yaml")
    assert sorted(u.name for u in access.users) == users
    # Each printed key is the one whose hash the file holds for its user.
    for user, (_, out, _) in zip(users, results, strict=True):
        assert access.user(user).key_sha256 == key_hash(out.strip())  # type: ignore[union-attr]


def test_six_simultaneous_instance_adds_all_land(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    names = [f"extra-{i}" for i in range(6)]
    results = finish([start(project, "instance", "add", "dev", name, "--network", "testnet") for name in names])
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    instances = read_stack_file("dev", project / "Pulumi.dev.yaml").config["zbi:instances"]
    assert set(names) <= set(instances) and "testnet" in instances


def test_a_second_editor_says_it_waits_then_proceeds(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    path = project / "access" / "testnet.yaml"
    with locked(path):
        process = start(project, "access", "create-key", "testnet", "patient")
        assert process.stderr is not None
        ready, _, _ = select.select([process.stderr], [], [], 60)
        assert ready, "the second editor said nothing while waiting"
        line = process.stderr.readline()
        assert line.startswith("waiting: another zbi command is editing") and "testnet.yaml" in line, line
        assert process.poll() is None  # still waiting: nothing written while the lock is held
        assert read_access_file(path).user("patient") is None
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, err
    assert read_access_file(path).user("patient").key_sha256 == key_hash(out.strip())  # type: ignore[union-attr]


def test_a_lock_held_too_long_is_a_message_not_a_hang(tmp_path: Path) -> None:
    path = tmp_path / "testnet.yaml"
    path.write_text("users: []\n")
    with locked(path):
        started = time.monotonic()
        held = r"has held its lock \.testnet\.yaml\.lock for 0 s; nothing was written"
        with pytest.raises(ConfigError, match=held), locked(path, wait=0.3):
            pytest.fail("two editors held the lock at once")
        assert time.monotonic() - started < 5
