"""Debian tools the live tests run: found on PATH (or at a known path), or installed with apt-get — as root, or
through passwordless sudo as on GitHub's runners. A tool that cannot be had fails the test with a one-line reason."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def _apt_get() -> list[str] | None:
    if not shutil.which("apt-get"):
        return None
    if os.geteuid() == 0:
        return ["apt-get"]
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=30).returncode == 0:
        return ["sudo", "-n", "apt-get"]
    return None


def _present(binary: str, needs: tuple[Path, ...]) -> str | None:
    found = shutil.which(binary) or next(
        (str(p) for p in (Path("/usr/sbin") / binary, Path("/usr/bin") / binary) if p.exists()), None
    )
    return found if found and all(path.exists() for path in needs) else None


def debian_tool(binary: str, packages: list[str], *, needs: tuple[Path, ...] = ()) -> str:
    """The path of `binary` (and every file of `needs` present), installing `packages` when missing."""
    found = _present(binary, needs)
    if found:
        return found
    apt_get = _apt_get()
    if apt_get:
        subprocess.run([*apt_get, "update", "-qq"], capture_output=True, timeout=300)
        subprocess.run(
            [*apt_get, "install", "-y", "-qq", "--no-install-recommends", *packages], capture_output=True, timeout=300
        )
        found = _present(binary, needs)
    if not found:
        pytest.fail(f"{binary} is not installed and could not be: apt-get install {' '.join(packages)}")
    return found
