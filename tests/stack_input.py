"""Stack input for the bad-input tests and their neighbours: the dev stack's config to vary, the rejection a varied
config earns, a copy of the project whose stack files a test may break, and `zbi` run as a user runs it."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, deep_merge
from zbi_infra.config.stack import load_stack_config
from zbi_infra.config.stack_file import read_stack_file
from zbi_infra.errors import ConfigError

DEV = read_stack_file("dev", ROOT / "Pulumi.dev.yaml").config
TODAY = date(2026, 9, 1)


def zbi(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zbi_infra.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def project_copy(tmp_path: Path) -> Path:
    """A copy of the project (program and stack files) whose stack files a test may break."""
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks", ignore=shutil.ignore_patterns("__pycache__"))
    for file in ROOT.glob("Pulumi*.yaml"):
        shutil.copy(file, tmp_path / file.name)
    return tmp_path


def config_with(**merges: Any) -> dict[str, Any]:
    config = copy.deepcopy(DEV)
    for key, patch in merges.items():
        full = key.replace("__", ":", 1)
        if isinstance(config.get(full), dict) and isinstance(patch, dict):
            config[full] = deep_merge(config[full], patch)
        else:
            config[full] = patch
    return config


def rejection(config: dict[str, Any], today: date = TODAY) -> str:
    with pytest.raises(ConfigError) as caught:
        load_stack_config(config, today=today)
    problems = caught.value.problems
    assert problems and all("Fix:" in p for p in problems), problems
    return "\n".join(problems)
