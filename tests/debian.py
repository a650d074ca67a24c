"""Debian tools the live tests run: found on PATH (or at a known path), or installed with apt-get — as root, or
through passwordless sudo as on GitHub's runners. A tool that cannot be had fails the test with a one-line reason."""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest


@functools.cache
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


# What this process has found, by request: once found whole, a tool stays (only the first call waits for the lock).
_found: dict[tuple[str, tuple[str, ...], tuple[Path, ...]], str] = {}


def debian_tool(binary: str, packages: list[str], *, needs: tuple[Path, ...] = ()) -> str:
    """The path of `binary` (and every file of `needs` present), installing `packages` when missing."""
    request = (binary, tuple(packages), needs)
    if request not in _found:
        _found[request] = _installed(binary, packages, needs)
    return _found[request]


def _installed(binary: str, packages: list[str], needs: tuple[Path, ...]) -> str:
    apt_get = _apt_get()
    if not apt_get:
        found = _present(binary, needs)
    else:
        # The suite's xdist workers may install at the same moment: one at a time (a file lock in the temporary
        # directory, released with its process), and apt-get waits for dpkg's lock rather than failing at once.
        # Presence is checked under the lock too: while another worker's dpkg is unpacking, a module's file can exist
        # before the library it links to (CI once started nginx with the Lua module before libluajit was unpacked).
        # A test may wait here for another worker's install: once per process and tool (_found), so a test timing
        # two calls does not find an install between them.
        with (Path(tempfile.gettempdir()) / "zbi-tests-apt.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = _present(binary, needs)
            if not found:
                wait = ["-o", "DPkg::Lock::Timeout=240"]
                subprocess.run([*apt_get, *wait, "update", "-qq"], capture_output=True, timeout=300)
                install = [*apt_get, *wait, "install", "-y", "-qq", "--no-install-recommends", *packages]
                subprocess.run(install, capture_output=True, timeout=300)
                found = _present(binary, needs)
    if not found:
        pytest.fail(f"{binary} is not installed and could not be: apt-get install {' '.join(packages)}")
    return found
